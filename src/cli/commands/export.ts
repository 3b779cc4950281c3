/** moe-eval export: bake a routing into a new GGUF for any llama.cpp-based runtime. */
import type { Argv } from 'yargs';

import { exportModel } from '../../export.js';
import { loadModel } from '../../model.js';
import { modelFlags, routingFlags, routingFromArgs } from '../args.js';
import { printJson } from '../output.js';

export const command = 'export';
export const describe = 'write a GGUF with a routing baked in (scaled ffn_down_exps / ffn_gate_inp, expert_used_count)';
export const builder = (y: Argv) =>
  routingFlags(modelFlags(y))
    .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the new GGUF file' })
    .example('$0 export -m mixtral.gguf -o mixtral-3x.gguf --experts 3 --expert-scale uniform', 'runs in llama.cpp as is');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const model = await loadModel(a.model, { kvOverrides: a['override-kv'] ?? [], ...(a.rpc ? { rpcServers: a.rpc.split(',') } : {}), signal });
  try {
    const r = await exportModel(model, a.output, { routing: await routingFromArgs(a) });
    if (a.json) printJson(r);
    else process.stdout.write(`wrote ${r.path} (${r.routing.label})\n`);
  } finally {
    await model.dispose();
  }
}
