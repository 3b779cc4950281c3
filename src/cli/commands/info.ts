/**
 * moe-eval info: the model's routing facts as llama.cpp applies them, and what one evaluation context
 * of the given sizes costs in memory (llama.cpp's own accounting: weights, KV cache, compute buffers).
 */
import type { Argv } from 'yargs';

import { MoeEvalError } from '../../errors.js';
import { loadModel } from '../../model.js';
import type { ContextMemory } from '../../native.js';
import { contextFlags, modelFlags } from '../args.js';
import { printJson, table } from '../output.js';

export const command = 'info';
export const describe = "a model's architecture and MoE routing facts";
export const builder = (y: Argv) =>
  contextFlags(modelFlags(y))
    .option('experts', { type: 'number', describe: 'size the compute buffers for this many experts per token' })
    .example('$0 info -m mixtral-8x7b.Q4_K_M.gguf', 'experts, gating, renormalization, file type, memory of a -c 512 -b 2048 context')
    .example('$0 info -m mixtral-8x7b.Q4_K_M.gguf -c 4096 -b 4096 --experts 4', 'the memory of that context instead');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const model = await loadModel(a.model, { gpuLayers: a['n-gpu-layers'], kvOverrides: a['override-kv'] ?? [], ...(a.rpc ? { rpcServers: a.rpc.split(',') } : {}), signal });
  try {
    const i = model.info;
    const sizes = {
      contextSize: a['ctx-size'],
      batchSize: a['batch-size'],
      ubatchSize: a['ubatch-size'],
      ...(a.threads === undefined ? {} : { threads: a.threads }),
      ...(a.experts === undefined ? {} : { routing: { experts: a.experts } }),
    };
    // a context that cannot be created (out of memory, say) leaves the routing facts worth printing;
    // bad sizes are usage errors (TypeError/RangeError) and still stop here
    let memory: (ContextMemory & { contextSize: number; batchSize: number; ubatchSize: number }) | { error: string };
    try {
      const ctx = await model.createContext(sizes);
      memory = { contextSize: ctx.options.contextSize, batchSize: ctx.options.batchSize, ubatchSize: ctx.options.ubatchSize, ...(await ctx.memory()) };
      await ctx.dispose();
    } catch (e) {
      if (!(e instanceof MoeEvalError)) throw e;
      memory = { error: e.message };
    }
    if (a.json) {
      printJson({ ...i, contextMemory: memory });
      return;
    }
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    const rows: [string, string | number][] = [
      ['architecture', i.architecture],
      ['file type', i.fileType],
      ['size', `${(i.sizeBytes / 2 ** 20).toFixed(1)} MiB, ${i.bitsPerWeight.toFixed(2)} bits per weight`],
      ['parameters', i.parameters.toLocaleString('en-US')],
      ['layers', i.layers],
      ['vocabulary', i.vocabSize],
      ['training context', i.trainingContextLength],
      ['experts (N)', i.expertCount],
      ['experts per token (n)', i.expertsUsed],
      ['MoE layers', i.moeLayers.map((l) => l.layer).join(',') || '-'],
      ['gating', i.gating],
      ['top-k weights renormalized', i.renormalized ? 'yes (scale rule: sqrt(m/n) under a uniform prior)' : 'no (the seed formula sqrt(n/m) applies)'],
      ['expert weights scale', i.expertWeightsScale],
      ['shared experts', i.sharedExperts ? `${i.sharedExperts} (always on; never routed or scaled)` : 0],
      ['expert groups', i.expertGroups ? `${i.expertGroupsUsed} of ${i.expertGroups} used` : '-'],
      'error' in memory
        ? [`memory, -c ${a['ctx-size']} -b ${a['batch-size']} -ub ${a['ubatch-size']}`, `no context: ${memory.error}`]
        : [
            `memory, -c ${memory.contextSize} -b ${memory.batchSize} -ub ${memory.ubatchSize}`,
            `weights ${mib(memory.model)} (mapped once, shared by all contexts), KV ${mib(memory.context)}, compute ${mib(memory.compute)}`,
          ],
    ];
    process.stdout.write(table(['', ''], rows) + '\n');
  } finally {
    await model.dispose();
  }
}
