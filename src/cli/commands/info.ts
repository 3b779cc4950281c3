/**
 * moe-eval info: the model's routing facts as llama.cpp applies them, and what one evaluation context
 * of the given sizes and routing costs in memory (llama.cpp's own accounting: weights, KV cache, compute buffers).
 */
import type { Argv } from 'yargs';

import { MoeEvalError } from '../../errors.js';
import { formatMiB } from '../../format.js';
import type { ModelInfo } from '../../model-info.js';
import type { ContextMemory } from '../../native.js';
import { type Device, devices } from '../../system.js';
import { contextFlags, jsonFlag, modelFlags, routingFlags } from '../flags.js';
import { contextFromArgs, loadModelFromArgs } from '../load.js';
import { factsTable, printJson } from '../output.js';
import { routingFromArgs } from '../routing-args.js';

export const command = 'info';
export const describe = "a model's architecture and MoE routing facts, and the memory of an evaluation context";
export const builder = (y: Argv) =>
  jsonFlag(routingFlags(contextFlags(modelFlags(y))))
    .example('$0 info -m mixtral-8x7b.Q4_K_M.gguf', 'experts, gating, renormalization, file type, memory of a -c 512 -b 2048 context')
    .example('$0 info -m mixtral-8x7b.Q4_K_M.gguf -c 4096 -b 4096 --experts 4', 'the memory of that context, sized for 4 experts per token');

/** 'layers 0-23 Vulkan0, 24-31 CPU; output CPU': runs of consecutive layers on one device. */
function formatPlacement(p: ModelInfo['placement']): string {
  const runs: string[] = [];
  for (let i = 0; i < p.layers.length; ) {
    let j = i;
    while (j + 1 < p.layers.length && p.layers[j + 1] === p.layers[i]) j++;
    runs.push(`${i === j ? i : `${i}-${j}`} ${p.layers[i]}`);
    i = j + 1;
  }
  return `layers ${runs.join(', ')}; output ${p.output}`;
}

function formatDevice(d: Device): string {
  return `${d.name} (${d.backend}, ${d.type}: ${d.description})`;
}

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const routing = await routingFromArgs(a, 'info');
  const sizes = contextFromArgs(a);
  const model = await loadModelFromArgs(a, signal);
  try {
    const i = model.info;
    // a context that cannot be created (out of memory, say) leaves the routing facts worth printing;
    // bad sizes are usage errors (TypeError/RangeError) and still stop here
    let memory: (ContextMemory & { contextSize: number; batchSize: number; ubatchSize: number; threads: number }) | { error: string };
    try {
      const ctx = await model.createContext({ ...sizes, routing });
      memory = { contextSize: ctx.options.contextSize, batchSize: ctx.options.batchSize, ubatchSize: ctx.options.ubatchSize, threads: ctx.options.threads, ...(await ctx.memory()) };
      await ctx.dispose();
    } catch (e) {
      if (!(e instanceof MoeEvalError)) throw e;
      memory = { error: e.message };
    }
    if (a.json) {
      printJson({ ...i, devices: devices(), contextMemory: memory });
      return;
    }
    const rows: [string, string | number][] = [
      ['architecture', i.architecture],
      ['file type', i.fileType],
      ['size', `${formatMiB(i.sizeBytes)}, ${i.bitsPerWeight.toFixed(2)} bits per weight`],
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
      ...(i.kvOverrides.length ? [['--override-kv', i.kvOverrides.join(' ')] as [string, string]] : []),
      ['devices', devices().map(formatDevice).join('; ')],
      ['placement', formatPlacement(i.placement)],
      'error' in memory
        ? ['memory of a context', `none could be created: ${memory.error}`]
        : [
            `memory, -c ${memory.contextSize} -b ${memory.batchSize} -ub ${memory.ubatchSize}${routing && Object.keys(routing).length ? ` (${Object.keys(routing).join(', ')})` : ''}`,
            `weights ${formatMiB(memory.model)} (mapped once, shared by all contexts), KV ${formatMiB(memory.context)}, compute ${formatMiB(memory.compute)}`,
          ],
    ];
    process.stdout.write(factsTable(rows) + '\n');
  } finally {
    await model.dispose();
  }
}
