/** moe-eval export: bake a routing into a new GGUF for any llama.cpp-based runtime. */
import type { Argv } from 'yargs';

import { exportModel } from '../../export.js';
import { jsonFlag, modelFlags, routingFlags, stringFlag } from '../flags.js';
import { loadModelFromArgs } from '../load.js';
import { printJson } from '../output.js';
import { routingFromArgs } from '../routing-args.js';

export const command = 'export';
export const describe = 'write a GGUF with a routing baked in (scaled ffn_down_exps / ffn_gate_inp, expert_used_count)';
export const builder = (y: Argv) =>
  jsonFlag(routingFlags(modelFlags(y)))
    .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the new GGUF file (its folder is created)' })
    .example('$0 export -m mixtral.gguf -o mixtral-3x.gguf --experts 3 --expert-scale uniform', 'runs in llama.cpp as is');

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const routing = await routingFromArgs(a, 'export');
  const model = await loadModelFromArgs(a, signal);
  try {
    const r = await exportModel(model, stringFlag(a, 'output')!, { routing });
    if (a.json) printJson(r);
    else process.stdout.write(`wrote ${r.path} (${r.routing.label})\n`);
  } finally {
    await model.dispose();
  }
}
