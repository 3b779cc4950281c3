/**
 * moe-eval demo (npm start): the main job on the bundled demo model, offline.
 *  1. calibrate on one part of the held-out text,
 *  2. sweep experts {1,2,3,4} × expert-output scale {none, seed formula, normalization-aware, calibrated}
 *     on another part, with KL-divergence against the stock model,
 *  3. quantize to q8_0, q4_0 and q2_k and compare them under the default and the best found routing,
 *  4. print the tables and write report.html, results.json/csv and the plots into a report folder.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Argv } from 'yargs';

import { calibrate } from '../../calibrate.js';
import { compare } from '../../compare.js';
import { loadModel } from '../../model.js';
import { packageRoot } from '../../native.js';
import { writeReport } from '../../report/index.js';
import type { ResultRow } from '../../report/types.js';
import type { Routing } from '../../routing.js';
import { sweep } from '../../sweep.js';
import { fmt, printJson, table } from '../output.js';
import { progressBar } from '../progress.js';

export const DEMO_MODEL = join(packageRoot, 'models', 'demo', 'moe-demo.gguf');
export const DEMO_TEXT = join(packageRoot, 'models', 'demo', 'heldout.txt');

export const command = 'demo';
export const describe = 'calibrate, sweep experts × scale rules and compare quantizations on the bundled demo MoE (npm start)';
export const builder = (y: Argv) =>
  y
    .option('out', { type: 'string', default: 'reports/demo', describe: 'report folder' })
    .option('ctx-size', { alias: 'c', type: 'number', default: 256 })
    .option('chunks', { type: 'number', default: 40, describe: 'evaluation chunks per point' })
    .option('threads', { alias: 't', type: 'number' })
    .option('quantize', { type: 'string', default: 'q8_0,q4_0,q2_k', describe: "quantization types to compare ('' for none)" })
    .option('json', { type: 'boolean', default: false })
    .example('$0 demo --chunks 6 --quantize q4_0', 'a quicker run');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

const RULES = ['none', 'seed-uniform', 'uniform', 'calibrated'] as const;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  if (!existsSync(DEMO_MODEL)) throw new TypeError(`The demo model is missing (${DEMO_MODEL}); reinstall the package`);
  const started = Date.now();
  const out = resolve(a.out);
  mkdirSync(out, { recursive: true });
  const c = a['ctx-size'];
  const threads = a.threads ? { threads: a.threads } : {};
  const say = (s: string) => a.json || process.stderr.write(s + '\n');
  const model = await loadModel(DEMO_MODEL, { signal });
  try {
    const info = model.info;
    const all = await model.tokenize(await import('node:fs/promises').then((fs) => fs.readFile(DEMO_TEXT, 'utf8')));
    // evaluation on the first chunks, calibration on the rest of the held-out text
    const evalTokens = all.subarray(0, Math.min(all.length, a.chunks * c));
    const calibTokens = all.subarray(evalTokens.length);
    say(`demo model: ${info.architecture}, ${info.expertCount} experts, top-${info.expertsUsed}, ${info.renormalized ? 'renormalized' : 'un-normalized'} router weights, ${(info.parameters / 1e6).toFixed(1)} M parameters`);

    const calBar = progressBar('calibrate');
    const profile = await calibrate(model, { tokens: calibTokens, contextSize: c, batchSize: 4 * c, experts: Math.min(info.expertCount, 4), ...threads, signal, onProgress: (p) => calBar.update(p.chunksDone, p.chunksTotal) });
    calBar.stop();

    const sweepFile = join(out, 'sweep.jsonl');
    rmSync(sweepFile, { force: true });
    rmSync(`${sweepFile}.base.kld`, { force: true });
    const points: Routing[] = [];
    for (const m of [1, 2, 3, 4].filter((x) => x <= info.expertCount)) {
      for (const rule of RULES) if (m !== info.expertsUsed || rule === 'none') points.push({ experts: m, expertScale: rule });
    }
    const bar = progressBar('sweep');
    const rows: ResultRow[] = [];
    const factors: number[] = [];
    let done = 0;
    let base: number | undefined;
    for (const point of points) {
      // one point per call (the grid is a product; this list is not), same results file and base
      const r = await sweep(model, { grid: { experts: [point.experts as number], expertScale: [point.expertScale as string] }, tokens: evalTokens, out: sweepFile, contextSize: c, batchSize: 4 * c, ...threads, reference: 'default', profile, signal });
      const row = r.rows[0]!;
      factors.push(row.expertScale[info.moeLayers[0]!.layer]!);
      if (row.experts[0] === info.expertsUsed && point.expertScale === 'none') base = row.perplexity;
      rows.push({
        model: 'moe-demo.gguf',
        fileType: info.fileType,
        sizeBytes: info.sizeBytes,
        bitsPerWeight: info.bitsPerWeight,
        routing: row.routing,
        experts: row.experts[0]!,
        scaleRule: point.expertScale as string,
        perplexity: row.perplexity,
        stderr: row.stderr,
        deltaPercent: null,
        kldMean: row.kldMean,
        sameTopPercent: row.sameTop === null ? null : 100 * row.sameTop,
        tokensPerSecond: row.tokensPerSecond,
      });
      bar.update(++done, points.length, `${row.routing}: PPL ${fmt(row.perplexity)}`);
    }
    bar.stop();
    for (const r of rows) r.deltaPercent = base ? (100 * (r.perplexity - base)) / base : null;

    // the best routing other than the stock one, to compare across quantization levels
    const best = rows.filter((r) => !(r.experts === info.expertsUsed && r.scaleRule === 'none')).sort((x, y) => x.perplexity - y.perplexity)[0];
    const quantize = a.quantize.split(',').map((s) => s.trim()).filter(Boolean);
    let qrows: ResultRow[] = [];
    if (quantize.length) {
      const qBar = progressBar('compare');
      const routings: Routing[] = [{}];
      if (best) routings.push({ experts: best.experts, expertScale: best.scaleRule, profile });
      const cmp = await compare({
        models: [DEMO_MODEL],
        quantize,
        routings,
        cacheDir: join(out, 'models'),
        tokens: evalTokens,
        contextSize: c,
        batchSize: 4 * c,
        ...threads,
        signal,
        onEvent: (e) => (e.kind === 'row' ? qBar.update(e.done, e.total, `${e.row.fileType} ${e.row.routing}`) : undefined),
      });
      qBar.stop();
      qrows = cmp.rows;
    }

    const seconds = (Date.now() - started) / 1000;
    const report = {
      title: 'moe-eval demo: experts × scale rules × quantization on the demo MoE',
      createdAt: new Date().toISOString(),
      settings: { model: 'models/demo/moe-demo.gguf', text: 'models/demo/heldout.txt', contextSize: c, evaluationChunks: Math.floor(evalTokens.length / c), calibrationTokens: profile.data.text.scoredTokens, renormalized: info.renormalized, seconds: Math.round(seconds) },
      fingerprints: { model: profile.data.model.fingerprint, evaluationText: profile.data.text.fingerprint },
      rows: [...rows, ...qrows.filter((q) => !q.fileType.startsWith('F'))],
    };
    const written = await writeReport(out, report);
    await profile.save(join(out, 'profile.json'));
    if (a.json) {
      printJson({ ...report, report: written });
      return;
    }
    process.stdout.write(`\nExperts per token × expert-output scale (F16, ${report.settings.evaluationChunks} chunks of ${c} tokens, KL-divergence against the stock model)\n`);
    process.stdout.write(
      table(['experts', 'scale rule', 'factor (layer 0)', 'PPL', '±', 'ΔPPL', 'mean KLD', 'same top'], rows.map((r, i) => [r.experts, r.scaleRule, fmt(factors[i]!), fmt(r.perplexity), fmt(r.stderr), pct(r.deltaPercent), fmt(r.kldMean ?? NaN, 5), `${fmt(r.sameTopPercent ?? NaN, 1)}%`])) + '\n',
    );
    if (qrows.length) {
      process.stdout.write('\nQuantization levels (KL-divergence against F16 with its default routing)\n');
      process.stdout.write(table(['type', 'bits/weight', 'routing', 'PPL', 'ΔPPL', 'mean KLD', 'same top', 'tokens/s'], qrows.map((r) => [r.fileType, fmt(r.bitsPerWeight, 2), r.routing, fmt(r.perplexity), pct(r.deltaPercent), fmt(r.kldMean ?? NaN, 5), `${fmt(r.sameTopPercent ?? NaN, 1)}%`, fmt(r.tokensPerSecond, 0)])) + '\n');
    }
    process.stdout.write(`\nreport: ${written.html}\n(also ${written.json}, ${written.csv}, ${written.plots.length} plots, profile.json) — ${seconds.toFixed(0)} s\n`);
  } finally {
    await model.dispose();
  }
}

function pct(x: number | null): string {
  return x === null ? '' : `${x >= 0 ? '+' : ''}${x.toFixed(2)}%`;
}
