/** moe-eval sweep: a routing grid on one model, resumable (JSONL), with optional KL-divergence. */
import type { Argv } from 'yargs';

import { sweep } from '../../sweep.js';
import { evalFlags, modelFlags, readTextArg } from '../args.js';
import { fmt, printJson, table } from '../output.js';
import { progressBar } from '../progress.js';

const list = (v: string | undefined, numeric: boolean) =>
  v === undefined ? undefined : v.split(/[;\s]+/).filter(Boolean).map((x) => (numeric || /^[0-9.]+$/.test(x) ? (x.includes(',') ? x.split(',').map(Number) : Number(x)) : x));

export const command = 'sweep';
export const describe = 'evaluate a grid of routings; results append to a JSONL file and a rerun resumes';
export const builder = (y: Argv) =>
  evalFlags(modelFlags(y))
    .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'results file (JSONL); rerunning with it resumes' })
    .option('experts', { type: 'string', describe: 'values separated by spaces or ";" (a value may be a per-layer list a,b,c)' })
    .option('expert-scale', { type: 'string', describe: 'values: numbers or rules (none seed-uniform uniform zipf:1 …)' })
    .option('gate-scale', { type: 'string', describe: 'values' })
    .option('min-weight-ratio', { type: 'string', describe: 'values of -ser t (Kmin = 1)' })
    .option('kld', { type: 'boolean', default: false, describe: "KL-divergence against the model's own routing" })
    .option('kl-divergence-base', { type: 'string', describe: 'KL-divergence against this base file instead' })
    .example('$0 sweep -m model.gguf -f text.txt -o sweep.jsonl --experts "1 2 3 4" --expert-scale "none seed-uniform uniform" --kld', '12 points, resumable');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const input = await readTextArg(a.file);
  const grid: Record<string, unknown[]> = {};
  const experts = list(a.experts, true);
  const es = list(a['expert-scale'], false);
  const gs = list(a['gate-scale'], true);
  const ser = list(a['min-weight-ratio'], true);
  if (experts) grid.experts = experts;
  if (es) grid.expertScale = es;
  if (gs) grid.gateScale = gs;
  if (ser) grid.minWeightRatio = ser;
  const bar = a.json ? progressBar('') : progressBar('sweep');
  const r = await sweep(a.model, {
    ...input,
    grid,
    out: a.out,
    contextSize: a['ctx-size'],
    batchSize: a['batch-size'],
    ...(a.threads ? { threads: a.threads } : {}),
    ...(a.chunks ? { chunks: a.chunks } : {}),
    ...(a['kl-divergence-base'] ? { reference: a['kl-divergence-base'] } : a.kld ? { reference: 'default' } : {}),
    signal,
    onPoint: (row, done, total) => bar.update(done, total, `${row.routing}: PPL ${fmt(row.perplexity)}`),
  });
  bar.stop();
  if (a.json) {
    printJson(r);
    return;
  }
  const withKld = r.rows.some((x) => x.kldMean !== null);
  process.stdout.write(
    table(
      ['routing', 'PPL', '±', ...(withKld ? ['mean KLD', 'same top %'] : []), 'tokens/s'],
      r.rows.map((x) => [x.routing, fmt(x.perplexity), fmt(x.stderr), ...(withKld ? [fmt(x.kldMean ?? NaN, 6), fmt(100 * (x.sameTop ?? NaN), 2)] : []), fmt(x.tokensPerSecond, 0)]),
    ) + '\n',
  );
  process.stdout.write(`${r.evaluated} evaluated, ${r.resumed} already in ${r.out}\n`);
}
