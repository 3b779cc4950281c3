/** moe-eval perplexity: llama-perplexity's numbers, under any routing. */
import { basename } from 'node:path';
import type { Argv } from 'yargs';

import { evaluate } from '../../evaluate.js';
import { formatKld, formatPerplexity, formatStderr, formatTokensPerSecond } from '../../format.js';
import { contextFlags, jsonFlag, modelFlags, routingFlags, stringFlag, textFlags } from '../flags.js';
import { contextFromArgs, loadModelFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { progress } from '../progress.js';
import { routingFromArgs } from '../routing-args.js';

export const command = 'perplexity';
export const describe = 'perplexity of a text under a routing (llama-perplexity compatible), optionally KL-divergence against a base';

export const builder = (y: Argv) =>
  jsonFlag(routingFlags(textFlags(contextFlags(modelFlags(y)))))
    .option('kl-divergence-base', { type: 'string', describe: 'without --kl-divergence: write this base file; with it: compare against it' })
    .option('kl-divergence', { type: 'boolean', default: false, describe: 'KL-divergence against --kl-divergence-base (llama-perplexity semantics)' })
    .example('$0 perplexity -m model.gguf -f wiki.test.raw -c 512 --experts 3 --expert-scale uniform', 'three experts per token, output scaled by the normalization-aware factor')
    .example('$0 perplexity -m q4.gguf --kl-divergence-base base.kld --kl-divergence --experts 3', 'KL-divergence against a base written by llama-perplexity or moe-eval');

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const base = stringFlag(a, 'kl-divergence-base');
  if (a['kl-divergence'] && !base) throw new TypeError('--kl-divergence needs --kl-divergence-base FILE');
  const input = await textFromArgs(a, !a['kl-divergence']);
  const routing = await routingFromArgs(a, 'perplexity');
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('perplexity', !a.json);
  try {
    const r = await evaluate(model, {
      ...input,
      ...contextFromArgs(a),
      routing,
      ...(base ? (a['kl-divergence'] ? { reference: base } : { saveReference: base }) : {}),
      signal,
      onProgress: (p) => bar.chunks(p.chunksDone, p.chunksTotal, `PPL ${formatPerplexity(p.perplexity)}`),
    });
    bar.stop();
    if (a.json) {
      printJson(r);
      return;
    }
    process.stdout.write(
      table(
        ['model', 'routing', 'chunks', 'PPL', '±', `tokens/s (-t ${r.threads})`],
        [[basename(r.model.path), r.routing.label, r.chunks.length, formatPerplexity(r.perplexity), formatStderr(r.stderr), formatTokensPerSecond(r.tokensPerSecond)]],
      ) + '\n',
    );
    process.stdout.write(`Final estimate: PPL = ${formatPerplexity(r.perplexity)} +/- ${formatStderr(r.stderr)}\n`);
    if (r.kld) {
      const k = r.kld;
      const pm = (x: number, u: number) => `${x.toFixed(6)} ± ${u.toFixed(6)}`;
      const pct = (x: number, u: number) => `${(100 * x).toFixed(3)} ± ${(100 * u).toFixed(3)} %`;
      process.stdout.write(
        table(['KL-divergence statistic', 'value'], [
          ['Mean PPL(Q)', pm(k.perplexity, k.perplexityUnc)],
          ['Mean PPL(base)', pm(k.basePerplexity, k.basePerplexityUnc)],
          ['Cor(ln PPL(Q), ln PPL(base))', `${(100 * k.correlation).toFixed(2)} %`],
          ['Mean ln(PPL(Q)/PPL(base))', pm(k.logRatio, k.logRatioUnc)],
          ['Mean PPL(Q)/PPL(base)', pm(k.ratio, k.ratioUnc)],
          ['Mean PPL(Q)-PPL(base)', pm(k.difference, k.differenceUnc)],
          ['Mean KLD', pm(k.kldMean, k.kldUnc)],
          ['Maximum / 99.9% / 99% / 95% / 90% KLD', [k.kldMax, k.kld999, k.kld99, k.kld95, k.kld90].map(formatKld).join(' / ')],
          ['Median KLD', formatKld(k.kldMedian)],
          ['10% / 5% / 1% / 0.1% / minimum KLD', [k.kld10, k.kld5, k.kld1, k.kld01, k.kldMin].map(formatKld).join(' / ')],
          ['Mean Δp', pct(k.dpMean, k.dpUnc)],
          ['RMS Δp', pct(k.dpRms, k.dpRmsUnc)],
          ['Same top p', pct(k.sameTop, k.sameTopUnc)],
        ]) + '\n',
      );
    }
    if (r.savedReference) process.stdout.write(`KL-divergence base written to ${r.savedReference}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}
