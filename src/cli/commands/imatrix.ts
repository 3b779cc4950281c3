/** moe-eval imatrix: llama-imatrix's importance matrix, under any routing, with the experts' coverage. */
import type { Argv } from 'yargs';

import { imatrix, imatrixCoverage } from '../../imatrix.js';
import { contextFlags, intFlag, jsonFlag, modelFlags, numberFlag, routingFlags, stringFlag, textFlags } from '../flags.js';
import { contextFromArgs, loadModelFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { progress } from '../progress.js';
import { routingFromArgs } from '../routing-args.js';

export const command = 'imatrix';
export const describe = "llama-imatrix's importance matrix (the same values and file), under any routing, and which experts it covered";
export const builder = (y: Argv) =>
  jsonFlag(routingFlags(textFlags(contextFlags(modelFlags(y)))))
    .option('output-file', { alias: 'o', type: 'string', default: 'imatrix.gguf', describe: "the matrix file to write (llama-imatrix's -o; its folder is created)" })
    .option('output-format', { type: 'string', choices: ['gguf', 'dat'], default: 'gguf', describe: "gguf (this llama.cpp's format) or dat (the legacy one)" })
    .option('compute-experts', { type: 'string', describe: "compute this many experts per token but mix only the model's own: rare experts get data, hidden states stay the model's" })
    .option('coverage-threshold', { type: 'string', describe: 'list experts that got less than this share of their fair share of tokens (default 0.1)' })
    .example('$0 imatrix -m model-f16.gguf -f calibration.txt -c 512 -o imatrix.gguf', 'then: moe-eval quantize model-f16.gguf model-iq2_xxs.gguf iq2_xxs --imatrix imatrix.gguf');

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const input = await textFromArgs(a);
  const routing = await routingFromArgs(a, 'imatrix');
  const computeExperts = intFlag(a, 'compute-experts');
  const threshold = numberFlag(a, 'coverage-threshold');
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('imatrix', !a.json);
  try {
    const r = await imatrix(model, {
      ...input,
      ...contextFromArgs(a),
      routing,
      ...(computeExperts === undefined ? {} : { computeExperts }),
      out: stringFlag(a, 'output-file')!,
      outputFormat: stringFlag(a, 'output-format') as 'gguf' | 'dat',
      signal,
      onProgress: (p) => bar.chunks(p.chunksDone, p.chunksTotal),
    });
    bar.stop();
    const coverage = imatrixCoverage(r, threshold === undefined ? {} : { threshold });
    if (a.json) {
      printJson({ file: r.file, chunks: r.chunks, tokens: r.tokens, perplexity: r.perplexity, routing: r.routing, coverage });
      return;
    }
    process.stdout.write(`wrote ${r.file}: ${r.entries.length} tensors, ${r.chunks} chunks, ${r.tokens} tokens, routing ${r.routing.label}\n`);
    if (coverage.layers.length) {
      process.stdout.write(
        table(
          ['layer', 'tokens per expert (min / max)', `experts below ${coverage.threshold} of their share`],
          coverage.layers.map((l) => [l.layer, `${Math.min(...l.experts)} / ${Math.max(...l.experts)}`, coverage.below.filter((b) => b.layer === l.layer).map((b) => b.expert).join(',') || '-']),
        ) + '\n',
      );
    }
    if (coverage.partial.length) process.stdout.write(`partial data (an expert got no token): ${coverage.partial.map((p) => p.name).join(', ')}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}
