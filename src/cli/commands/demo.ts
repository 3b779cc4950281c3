/**
 * moe-eval demo (npm start): the main job on the bundled demo model, offline.
 *  1. calibrate on one part of the held-out text,
 *  2. sweep experts {1,2,3,4} × expert-output scale {none, seed formula, normalization-aware, calibrated}
 *     on another part, with KL-divergence against the stock model,
 *  3. quantize to q8_0, q4_0 and q2_k and compare them under the default and the best found routing,
 *  4. scan every MoE layer's sensitivity to its experts count and allocate n − ½ experts per token on
 *     average by layer (docs/budgets.md), measured against uniform counts,
 *  5. print the tables and write report.html, results.json/csv and the plots into a report folder.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Argv } from 'yargs';

import { calibrate } from '../../calibrate.js';
import { compare } from '../../compare.js';
import { allocate } from '../../allocate.js';
import { type Model, loadModel } from '../../model.js';
import { type ScanResult, scan } from '../../scan.js';
import { packageRoot } from '../../native.js';
import { writeReport } from '../../report/index.js';
import type { ResultRow, ScanReport } from '../../report/types.js';
import { type Routing, resolveRouting } from '../../routing.js';
import { sweep } from '../../sweep.js';
import { formatBitsPerWeight, formatDeltaPercent, formatFactor, formatKld, formatPercent, formatPerplexity, formatStderr, formatTokensPerSecond } from '../../format.js';
import { intFlag, jsonFlag } from '../flags.js';
import { printJson, table } from '../output.js';
import { type Progress, notice, progress } from '../progress.js';
import { demoPruneSection } from '../demo-prune.js';
import { type VerifiedAllocation, scanReportData, verifyAllocation } from './scan.js';

export const DEMO_MODEL = join(packageRoot, 'models', 'demo', 'moe-demo.gguf');
export const DEMO_TEXT = join(packageRoot, 'models', 'demo', 'heldout.txt');

export const command = 'demo';
export const describe = 'calibrate, sweep experts × scale rules and compare quantizations on the bundled demo MoE (npm start)';
export const builder = (y: Argv) =>
  jsonFlag(y)
    .option('out', { type: 'string', default: 'reports/demo', describe: 'report folder (created)' })
    .option('ctx-size', { alias: 'c', type: 'string', describe: 'tokens per chunk (default 256)' })
    .option('chunks', { type: 'string', describe: 'evaluation chunks per point (default 40)' })
    .option('threads', { alias: 't', type: 'string', describe: "CPU threads (default: llama.cpp's rule, the physical cores)" })
    .option('quantize', { type: 'string', default: 'q8_0,q4_0,q2_k', describe: "quantization types to compare ('' for none)" })
    .example('$0 demo --chunks 6 --quantize q4_0', 'a quicker run');

const RULES = ['none', 'seed-uniform', 'uniform', 'calibrated'] as const;

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  if (!existsSync(DEMO_MODEL)) throw new TypeError(`The demo model is missing (${DEMO_MODEL}); reinstall the package`);
  const started = Date.now();
  const out = resolve(String(a.out));
  mkdirSync(out, { recursive: true });
  const c = intFlag(a, 'ctx-size') ?? 256;
  const nChunks = intFlag(a, 'chunks') ?? 40;
  const t = intFlag(a, 'threads');
  const threads = t === undefined ? {} : { threads: t };
  const say = (text: string) => a.json || notice(text);
  const model = await loadModel(DEMO_MODEL, { signal });
  const bar = progress('demo', !a.json);
  try {
    const info = model.info;
    const all = await model.tokenize(await readFile(DEMO_TEXT, 'utf8'));
    // evaluation on the first chunks, calibration on the rest of the held-out text
    const evalTokens = all.subarray(0, Math.min(all.length, nChunks * c));
    const calibTokens = all.subarray(evalTokens.length);
    say(`demo model: ${info.architecture}, ${info.expertCount} experts, top-${info.expertsUsed}, ${info.renormalized ? 'renormalized' : 'un-normalized'} router weights, ${(info.parameters / 1e6).toFixed(1)} M parameters`);

    const profile = await calibrate(model, { tokens: calibTokens, contextSize: c, batchSize: 4 * c, experts: Math.min(info.expertCount, 4), ...threads, signal, onProgress: (p) => bar.chunks(p.chunksDone, p.chunksTotal, 'calibrating') });

    const sweepFile = join(out, 'sweep.jsonl');
    rmSync(sweepFile, { force: true });
    rmSync(`${sweepFile}.base.kld`, { force: true });
    // experts × scale rule; the rules other than none at the trained count are the default routing and
    // are evaluated once (sweep drops points that resolve to the same routing)
    const routings: Routing[] = [1, 2, 3, 4].filter((x) => x <= info.expertCount).flatMap((m) => RULES.map((rule) => ({ experts: m, expertScale: rule })));
    bar.points(0, routings.length);
    const sw = await sweep(model, {
      routings,
      tokens: evalTokens,
      out: sweepFile,
      contextSize: c,
      batchSize: 4 * c,
      ...threads,
      reference: 'default',
      profile,
      signal,
      onProgress: (p) => {
        bar.points(Math.max(0, p.point - 1), p.points, p.routing);
        bar.chunks(p.chunksDone, p.chunksTotal);
      },
    });
    const byKey = new Map(sw.rows.map((r) => [r.key, r]));
    const base = sw.rows.find((r) => r.routing === 'default')!;
    // every grid point gets its row: a point that duplicated the default shows the default's numbers
    const rows: (ResultRow & { factor: number })[] = routings.map((p) => {
      const resolved = resolveRouting({ ...p, ...(p.expertScale === 'calibrated' ? { profile } : {}) }, info);
      const row = [...byKey.values()].find((r) => r.routing === resolved.label) ?? base;
      return {
        model: 'moe-demo.gguf',
        fileType: info.fileType,
        sizeBytes: info.sizeBytes,
        bitsPerWeight: info.bitsPerWeight,
        routing: resolved.label,
        experts: p.experts as number,
        scaleRule: p.expertScale as string,
        perplexity: row.perplexity,
        stderr: row.stderr,
        deltaPercent: (100 * (row.perplexity - base.perplexity)) / base.perplexity,
        // the default routing is the KL-divergence reference itself (its KLD against its own base is 0
        // up to the base's 16-bit rounding): 0, as compare() reports its reference
        kldMean: row === base ? 0 : row.kldMean,
        sameTopPercent: row === base ? 100 : row.sameTop === null ? null : 100 * row.sameTop,
        tokensPerSecond: row.tokensPerSecond,
        threads: row.threads,
        expertsPerToken: row.expertsPerToken,
        factor: resolved.expertScale[info.moeLayers[0]!.layer]!,
      };
    });

    // pruning: 0 / 12.5 / 25 / 50 % of the experts masked, per ranking criterion (src/cli/demo-prune.ts)
    const pruning = await demoPruneSection(model, { tokens: evalTokens, profile, out: join(out, 'prune.jsonl'), reference: `${sweepFile}.base.kld`, contextSize: c, ...threads, bar, signal });

    // the best routing other than the stock one, to compare across quantization levels
    const best = rows.filter((r) => r.experts !== info.expertsUsed).sort((x, y) => x.perplexity - y.perplexity)[0];
    const quantize = String(a.quantize).split(',').map((x) => x.trim()).filter(Boolean);
    let qrows: ResultRow[] = [];
    if (quantize.length) {
      const qRoutings: Routing[] = [{}];
      if (best) qRoutings.push({ experts: best.experts, expertScale: best.scaleRule, ...(best.scaleRule === 'calibrated' ? { profile } : {}) });
      const cmp = await compare({
        models: [DEMO_MODEL],
        quantize,
        routings: qRoutings,
        cacheDir: join(out, 'models'),
        tokens: evalTokens,
        contextSize: c,
        batchSize: 4 * c,
        ...threads,
        signal,
        onEvent: (e) => {
          if (e.kind === 'quantize') bar.chunks(Math.round(100 * e.fraction), 100, `quantizing ${e.type}`);
          else if (e.kind === 'evaluate') {
            bar.points(e.done, e.total, `${e.model} ${e.routing}`);
            bar.chunks(e.chunksDone, e.chunksTotal);
          }
        },
      });
      qrows = cmp.rows;
    }
    const budgets = await budgetSection(model, evalTokens, c, threads, out, bar, signal);
    bar.stop();

    const seconds = (Date.now() - started) / 1000;
    const report = {
      title: 'moe-eval demo: experts × scale rules × quantization on the demo MoE',
      createdAt: new Date().toISOString(),
      settings: { model: 'models/demo/moe-demo.gguf', text: 'models/demo/heldout.txt', contextSize: c, evaluationChunks: Math.floor(evalTokens.length / c), calibrationTokens: profile.data.text.scoredTokens, renormalized: info.renormalized, threads: base.threads, seconds: Math.round(seconds) },
      fingerprints: { model: profile.data.model.fingerprint, evaluationText: profile.data.text.fingerprint },
      rows: [...rows.map(({ factor: _, ...r }) => r), ...qrows.filter((q) => !q.fileType.startsWith('F')), ...budgets.rows.filter((b) => !rows.some((r) => r.routing === b.routing))],
      scan: budgets.heatmap,
    };
    const written = await writeReport(out, report, pruning.plots);
    await profile.save(join(out, 'profile.json'));
    if (a.json) {
      printJson({ ...report, budgets: { allocation: budgets.verified.allocation, measuredKld: budgets.verified.measured.kld!.kldMean }, pruning: pruning.result.rows, report: written });
      return;
    }
    process.stdout.write(`\nExperts per token × expert-output scale (F16, ${report.settings.evaluationChunks} chunks of ${c} tokens, KL-divergence against the stock model)\n`);
    process.stdout.write(
      table(
        ['experts', 'scale rule', 'factor (layer 0)', 'PPL', '±', 'ΔPPL', 'mean KLD', 'same top'],
        rows.map((r) => [r.experts, r.scaleRule, formatFactor(r.factor), formatPerplexity(r.perplexity), formatStderr(r.stderr), formatDeltaPercent(r.deltaPercent), formatKld(r.kldMean), formatPercent(r.sameTopPercent)]),
      ) + '\n',
    );
    if (qrows.length) {
      process.stdout.write('\nQuantization levels (KL-divergence against F16 with its default routing)\n');
      process.stdout.write(
        table(
          ['type', 'bits/weight', 'routing', 'PPL', 'ΔPPL', 'mean KLD', 'same top', `tokens/s (-t ${base.threads})`],
          qrows.map((r) => [r.fileType, formatBitsPerWeight(r.bitsPerWeight), r.routing, formatPerplexity(r.perplexity), formatDeltaPercent(r.deltaPercent), formatKld(r.kldMean), formatPercent(r.sameTopPercent), formatTokensPerSecond(r.tokensPerSecond)]),
        ) + '\n',
      );
    }
    printBudgets(budgets);
    process.stdout.write(`\nExperts pruned (runtime masks ranked on the calibration text; F16, KL-divergence against the stock model)\n${pruning.text}\n`);
    process.stdout.write(`\nreport: ${written.html}\n(also ${written.json}, ${written.csv}, ${written.plots.length} plots, profile.json) — ${seconds.toFixed(0)} s\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}

interface Budgets {
  scan: ScanResult;
  heatmap: ScanReport;
  verified: VerifiedAllocation;
  rows: ResultRow[];
}

/**
 * Per-layer expert budgets: a sensitivity scan of every MoE layer at n−1 … 1 and n+1 experts, the
 * schedule allocate() picks for a mean of n − ½ experts per token, and that schedule measured against
 * the uniform counts around it (docs/budgets.md).
 */
async function budgetSection(model: Model, evalTokens: Int32Array, c: number, threads: { threads?: number }, out: string, bar: Progress, signal: AbortSignal): Promise<Budgets> {
  const info = model.info;
  const scanFile = join(out, 'scan.jsonl');
  rmSync(scanFile, { force: true });
  rmSync(`${scanFile}.base.kld`, { force: true });
  // the sweep's tokens and sizes, so the scan's cells and the schedules compare with the sweep's points
  const s = await scan(model, {
    tokens: evalTokens,
    contextSize: c,
    batchSize: 4 * c,
    ...threads,
    out: scanFile,
    signal,
    onProgress: (p) => {
      bar.points(p.cell, p.cells, `scan: ${p.routing}`);
      bar.chunks(p.chunksDone, p.chunksTotal);
    },
  });
  const allocation = allocate(s, { meanExperts: info.expertsUsed - 0.5 });
  const verified = await verifyAllocation(model, s, allocation, { batchSize: 4 * c, ...threads }, signal, (label, done, total) => {
    bar.points(1, 1, label);
    bar.chunks(done, total);
  });
  const { rows, scan: heatmap } = scanReportData(model, s, verified);
  return { scan: s, heatmap: heatmap!, verified, rows: rows.filter((r) => r.routing !== 'default') };
}

function printBudgets({ scan: s, verified: v }: Budgets): void {
  process.stdout.write(`\nLayer sensitivity: mean KLD with one MoE layer changed (${s.chunks} chunks of ${s.contextSize} tokens)\n`);
  process.stdout.write(table(['layer', ...s.changes], s.facts.moeLayers.map((l, i) => [l, ...s.kld[i]!.map((x) => formatKld(x))])) + '\n');
  const delta = (ppl: number) => formatDeltaPercent((100 * (ppl - s.base.perplexity)) / s.base.perplexity);
  process.stdout.write(`\nExperts per layer for a mean of ${v.allocation.meanExperts} per token (allocate() on the scan) against uniform counts\n`);
  process.stdout.write(
    table(
      ['routing', 'k̄', 'predicted KLD', 'mean KLD', 'same top', 'PPL', 'ΔPPL'],
      [
        ['default', s.base.expertsPerToken.toFixed(3), '-', formatKld(0), formatPercent(100), formatPerplexity(s.base.perplexity), delta(s.base.perplexity)],
        [v.measured.routing.label, v.measured.expertsPerToken.mean.toFixed(3), formatKld(v.allocation.predictedKld), formatKld(v.measured.kld!.kldMean), formatPercent(100 * v.measured.kld!.sameTop), formatPerplexity(v.measured.perplexity), delta(v.measured.perplexity)],
        ...v.uniform.map((u) => [u.routing.label, u.expertsPerToken.mean.toFixed(3), '-', formatKld(u.kld!.kldMean), formatPercent(100 * u.kld!.sameTop), formatPerplexity(u.perplexity), delta(u.perplexity)]),
      ],
    ) + '\n',
  );
}
