/** moe-eval perplexity: llama-perplexity's numbers, under any routing. */
import type { Argv } from 'yargs';

import { evaluate } from '../../evaluate.js';
import { loadModel } from '../../model.js';
import { evalFlags, modelFlags, readTextArg, routingFromArgs, routingFlags } from '../args.js';
import { fmt, printJson, table } from '../output.js';
import { progressBar } from '../progress.js';

export const command = 'perplexity';
export const describe = 'perplexity of a text under a routing (llama-perplexity compatible)';

export const builder = (y: Argv) =>
  routingFlags(evalFlags(modelFlags(y))).example(
    '$0 perplexity -m model.gguf -f wiki.test.raw -c 512 --experts 3 --expert-scale uniform',
    'three experts per token, output scaled by the normalization-aware factor',
  );

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const input = await readTextArg(a.file);
  const model = await loadModel(a.model, { gpuLayers: a['n-gpu-layers'], kvOverrides: a['override-kv'] ?? [], signal });
  try {
    const bar = a.json ? progressBar('') : progressBar('perplexity');
    const r = await evaluate(model, {
      ...input,
      contextSize: a['ctx-size'],
      batchSize: a['batch-size'],
      ubatchSize: a['ubatch-size'],
      ...(a.threads === undefined ? {} : { threads: a.threads }),
      ...(a.chunks === undefined ? {} : { chunks: a.chunks }),
      routing: routingFromArgs(a),
      signal,
      onProgress: (p) => bar.update(p.chunksDone, p.chunksTotal, `PPL ${fmt(p.perplexity)}`),
    });
    bar.stop();
    if (a.json) {
      printJson(r);
      return;
    }
    process.stdout.write(
      table(
        ['model', 'routing', 'chunks', 'PPL', '±', 'tokens/s'],
        [[r.model.path.split('/').pop()!, r.routing.label, r.chunks.length, fmt(r.perplexity), fmt(r.stderr, 5), fmt(r.tokensPerSecond, 0)]],
      ) + '\n',
    );
    process.stdout.write(`Final estimate: PPL = ${fmt(r.perplexity)} +/- ${fmt(r.stderr, 5)}\n`);
  } finally {
    await model.dispose();
  }
}
