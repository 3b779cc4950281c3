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
  routingFlags(evalFlags(modelFlags(y)))
    .option('kl-divergence-base', { type: 'string', describe: 'without --kl-divergence: write this base file; with it: compare against it' })
    .option('kl-divergence', { type: 'boolean', default: false, describe: 'KL-divergence against --kl-divergence-base (llama-perplexity semantics)' })
    .example(
    '$0 perplexity -m model.gguf -f wiki.test.raw -c 512 --experts 3 --expert-scale uniform',
    'three experts per token, output scaled by the normalization-aware factor',
  );

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const base = a['kl-divergence-base'];
  if (a['kl-divergence'] && !base) throw new TypeError('--kl-divergence needs --kl-divergence-base FILE');
  const input = a['kl-divergence'] && a.file === undefined ? {} : await readTextArg(a.file);
  const model = await loadModel(a.model, { gpuLayers: a['n-gpu-layers'], kvOverrides: a['override-kv'] ?? [], ...(a.rpc ? { rpcServers: a.rpc.split(',') } : {}), signal });
  try {
    const bar = a.json ? progressBar('') : progressBar('perplexity');
    const r = await evaluate(model, {
      ...input,
      contextSize: a['ctx-size'],
      batchSize: a['batch-size'],
      ubatchSize: a['ubatch-size'],
      ...(a.threads === undefined ? {} : { threads: a.threads }),
      ...(a.chunks === undefined ? {} : { chunks: a.chunks }),
      routing: await routingFromArgs(a),
      ...(base ? (a['kl-divergence'] ? { reference: base } : { saveReference: base }) : {}),
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
    if (r.kld) {
      const k = r.kld;
      process.stdout.write(
        table(['KL-divergence statistic', 'value'], [
          ['Mean PPL(Q)', `${fmt(k.perplexity, 6)} ± ${fmt(k.perplexityUnc, 6)}`],
          ['Mean PPL(base)', `${fmt(k.basePerplexity, 6)} ± ${fmt(k.basePerplexityUnc, 6)}`],
          ['Cor(ln PPL(Q), ln PPL(base))', `${fmt(100 * k.correlation, 2)} %`],
          ['Mean ln(PPL(Q)/PPL(base))', `${fmt(k.logRatio, 6)} ± ${fmt(k.logRatioUnc, 6)}`],
          ['Mean PPL(Q)/PPL(base)', `${fmt(k.ratio, 6)} ± ${fmt(k.ratioUnc, 6)}`],
          ['Mean PPL(Q)-PPL(base)', `${fmt(k.difference, 6)} ± ${fmt(k.differenceUnc, 6)}`],
          ['Mean KLD', `${fmt(k.kldMean, 6)} ± ${fmt(k.kldUnc, 6)}`],
          ['Maximum / 99.9% / 99% / 95% / 90% KLD', [k.kldMax, k.kld999, k.kld99, k.kld95, k.kld90].map((x) => fmt(x, 6)).join(' / ')],
          ['Median KLD', fmt(k.kldMedian, 6)],
          ['10% / 5% / 1% / 0.1% / minimum KLD', [k.kld10, k.kld5, k.kld1, k.kld01, k.kldMin].map((x) => fmt(x, 6)).join(' / ')],
          ['Mean Δp', `${fmt(100 * k.dpMean, 3)} ± ${fmt(100 * k.dpUnc, 3)} %`],
          ['RMS Δp', `${fmt(100 * k.dpRms, 3)} ± ${fmt(100 * k.dpRmsUnc, 3)} %`],
          ['Same top p', `${fmt(100 * k.sameTop, 3)} ± ${fmt(100 * k.sameTopUnc, 3)} %`],
        ]) + '\n',
      );
    }
    if (r.savedReference) process.stdout.write(`KL-divergence base written to ${r.savedReference}\n`);
  } finally {
    await model.dispose();
  }
}
