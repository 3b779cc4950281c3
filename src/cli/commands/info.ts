/** moe-eval info: the model's routing facts as llama.cpp applies them. */
import type { Argv } from 'yargs';

import { loadModel } from '../../model.js';
import { modelFlags } from '../args.js';
import { printJson, table } from '../output.js';

export const command = 'info';
export const describe = "a model's architecture and MoE routing facts";
export const builder = (y: Argv) => modelFlags(y).example('$0 info -m mixtral-8x7b.Q4_K_M.gguf', 'experts, gating, renormalization, file type');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const model = await loadModel(a.model, { gpuLayers: a['n-gpu-layers'], kvOverrides: a['override-kv'] ?? [], ...(a.rpc ? { rpcServers: a.rpc.split(',') } : {}), signal });
  try {
    const i = model.info;
    if (a.json) {
      printJson(i);
      return;
    }
    const rows: [string, string | number][] = [
      ['architecture', i.architecture],
      ['file type', i.fileType],
      ['size', `${(i.sizeBytes / 2 ** 20).toFixed(1)} MiB, ${i.bitsPerWeight.toFixed(2)} bits per weight`],
      ['parameters', i.parameters.toLocaleString('en-US')],
      ['layers', i.layers],
      ['vocabulary', i.vocabSize],
      ['training context', i.trainingContextLength],
      ['experts (N)', i.experts],
      ['experts per token (n)', i.expertsUsed],
      ['MoE layers', i.moeLayers.map((l) => l.layer).join(',') || '-'],
      ['gating', i.gating],
      ['top-k weights renormalized', i.renormalized ? 'yes (scale rule: sqrt(m/n) under a uniform prior)' : 'no (the seed formula sqrt(n/m) applies)'],
      ['expert weights scale', i.expertWeightsScale],
      ['shared experts', i.sharedExperts ? `${i.sharedExperts} (always on; never routed or scaled)` : 0],
      ['expert groups', i.expertGroups ? `${i.expertGroupsUsed} of ${i.expertGroups} used` : '-'],
    ];
    process.stdout.write(table(['', ''], rows) + '\n');
  } finally {
    await model.dispose();
  }
}
