/**
 * moe-eval scan: the layers × changes sensitivity matrix (src/scan.ts), resumable (JSONL); with
 * --mean-experts or --active-params, the per-layer schedule allocate() predicts best under that budget,
 * verified by evaluation (predicted against measured KLD) next to uniform experts counts.
 */
import { basename, resolve } from 'node:path';
import type { Argv } from 'yargs';

import { type Allocation, allocate } from '../../allocate.js';
import { type EvaluateResult, evaluate } from '../../evaluate.js';
import { formatDeltaPercent, formatKld, formatPercent, formatPerplexity } from '../../format.js';
import type { Model } from '../../model.js';
import { writeReport } from '../../report/index.js';
import type { ReportData, ResultRow } from '../../report/types.js';
import { type Routing, resolveRouting } from '../../routing.js';
import { type ScanResult, scan } from '../../scan.js';
import { contextFlags, jsonFlag, modelFlags, numberFlag, stringFlag, textFlags } from '../flags.js';
import type { ContextSettings } from '../../context.js';
import { contextFromArgs, loadModelFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { progress } from '../progress.js';

export const command = 'scan';
export const describe = 'per-layer sensitivity: KL-divergence with one MoE layer routed differently, every layer × change; then a per-layer experts budget (--mean-experts)';
export const flagNames = { changes: '--changes', meanExperts: '--mean-experts', activeParams: '--active-params', out: '-o (--out)' };
export const builder = (y: Argv) =>
  jsonFlag(textFlags(contextFlags(modelFlags(y))))
    .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'results file (JSONL, created with its folder); rerunning with it resumes' })
    .option('changes', {
      type: 'string',
      array: true,
      describe: "the changes, each applied to one layer at a time: experts=M, expert-scale=S, gate-scale=G, mask-experts=a,b, or several joined by + (default: experts n-1 … 1 and n+1)",
    })
    .option('kl-divergence-base', { type: 'string', describe: "KL-divergence against this base file instead of the model's own routing" })
    .option('mean-experts', { type: 'string', describe: 'then allocate experts per layer for this mean over MoE layers, and verify it by evaluation' })
    .option('active-params', { type: 'string', describe: 'then allocate experts per layer for at most this many active parameters per token, and verify it' })
    .option('report', { type: 'string', describe: 'write report.html (heatmap, KLD against k̄), results.json/csv and the plots into this folder' })
    .example('$0 scan -m model.gguf -f text.txt -c 512 --chunks 20 -o scan.jsonl', 'every MoE layer at n-1 … 1 and n+1 experts, one at a time')
    .example('$0 scan -m model.gguf -f text.txt -o scan.jsonl --mean-experts 1.5 --report scan-report', 'then the best schedule with 1.5 experts per token on average, measured');

/** One verified schedule: what allocate() predicted, what evaluation measured. */
export interface VerifiedAllocation {
  allocation: Allocation;
  measured: EvaluateResult;
  /** Uniform experts counts around the budget, evaluated the same way (for comparison). */
  uniform: EvaluateResult[];
}

/**
 * Evaluates an allocation (and the uniform counts floor/ceil of its mean that differ from the model's
 * own) against the scan's base, on the scan's tokens and sizes.
 */
export async function verifyAllocation(model: Model, s: ScanResult, allocation: Allocation, sizes: Omit<ContextSettings, 'contextSize'>, signal?: AbortSignal, onChunk?: (label: string, done: number, total: number) => void): Promise<VerifiedAllocation> {
  const run = (routing: Routing) => {
    const label = resolveRouting(routing, model.info).label;
    return evaluate(model, { reference: s.reference, chunks: s.chunks, contextSize: s.contextSize, ...sizes, routing, ...(signal ? { signal } : {}), onProgress: (p) => onChunk?.(label, p.chunksDone, p.chunksTotal) });
  };
  const measured = await run(allocation.routing);
  const counts = [...new Set([Math.floor(allocation.meanExperts), Math.ceil(allocation.meanExperts)])].filter((m) => m >= 1 && m !== model.info.expertsUsed);
  const uniform: EvaluateResult[] = [];
  for (const m of counts) uniform.push(await run({ experts: m }));
  return { allocation, measured, uniform };
}

/** Report rows and the heatmap of a scan (and of a verified allocation), for writeReport(). */
export function scanReportData(model: Model, s: ScanResult, verified?: VerifiedAllocation): Pick<ReportData, 'rows' | 'scan'> {
  const info = model.info;
  const row = (routing: string, experts: number[], r: { perplexity: number; stderr: number; kldMean: number; sameTop: number; tokensPerSecond: number; threads: number; expertsPerToken: number }, isBase = false): ResultRow => ({
    model: basename(model.path),
    fileType: info.fileType,
    sizeBytes: info.sizeBytes,
    bitsPerWeight: info.bitsPerWeight,
    routing,
    experts: experts.length ? Math.max(...info.moeLayers.map((l) => experts[l.layer]!)) : 0,
    scaleRule: /expert-scale=/.test(routing) ? 'custom' : 'none',
    perplexity: r.perplexity,
    stderr: r.stderr,
    deltaPercent: (100 * (r.perplexity - s.base.perplexity)) / s.base.perplexity,
    kldMean: isBase ? 0 : r.kldMean,
    sameTopPercent: isBase ? 100 : 100 * r.sameTop,
    tokensPerSecond: r.tokensPerSecond,
    threads: r.threads,
    expertsPerToken: r.expertsPerToken,
  });
  const fromEval = (e: EvaluateResult) => row(e.routing.label, e.routing.experts, { ...e, kldMean: e.kld!.kldMean, sameTop: e.kld!.sameTop, expertsPerToken: e.expertsPerToken.mean });
  const seen = new Set<string>();
  const rows = [row('default', [], s.base, true), ...s.cells.map((c) => row(c.routing, c.experts, c))].filter((r) => !seen.has(r.routing) && seen.add(r.routing));
  if (verified) rows.push(...[verified.measured, ...verified.uniform].map(fromEval).filter((r) => !seen.has(r.routing) && seen.add(r.routing)));
  return { rows, scan: { layers: s.facts.moeLayers, changes: s.changes, kld: s.kld, deltaPercent: s.deltaPercent } };
}

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const input = await textFromArgs(a);
  const sizes = contextFromArgs(a);
  const changes = (a.changes as string[] | undefined)?.flatMap((x) => String(x).trim().split(/\s+/)).filter(Boolean);
  const meanExperts = numberFlag(a, 'mean-experts');
  const activeParams = numberFlag(a, 'active-params');
  if (meanExperts !== undefined && activeParams !== undefined) throw new TypeError('--mean-experts and --active-params both give a budget; give one');
  const base = stringFlag(a, 'kl-divergence-base');
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('scan', !a.json);
  try {
    const s = await scan(model, {
      ...input,
      ...sizes,
      out: stringFlag(a, 'out')!,
      ...(changes?.length ? { changes } : {}),
      ...(base ? { reference: base } : {}),
      signal,
      onProgress: (p) => {
        bar.points(p.cell, p.cells, p.routing);
        bar.chunks(p.chunksDone, p.chunksTotal);
      },
    });
    let verified: VerifiedAllocation | undefined;
    if (meanExperts !== undefined || activeParams !== undefined) {
      const { contextSize: _scanned, ...settingsButSize } = sizes; // the allocation is evaluated at the scan's contextSize
      const allocation = allocate(s, meanExperts !== undefined ? { meanExperts } : { activeParams: activeParams! });
      verified = await verifyAllocation(model, s, allocation, settingsButSize, signal, (label, done, total) => {
        bar.points(1, 1, label);
        bar.chunks(done, total);
      });
    }
    bar.stop();
    const reportDir = stringFlag(a, 'report');
    let written: Awaited<ReturnType<typeof writeReport>> | undefined;
    if (reportDir) {
      written = await writeReport(resolve(reportDir), {
        title: `moe-eval scan: ${basename(model.path)}`,
        createdAt: new Date().toISOString(),
        settings: { model: model.path, contextSize: s.contextSize, chunks: s.chunks, reference: s.reference, results: s.out, ...(verified ? { allocated: verified.allocation.experts, predictedKld: verified.allocation.predictedKld } : {}) },
        fingerprints: {},
        ...scanReportData(model, s, verified),
      });
    }
    if (a.json) {
      printJson({ ...s, ...(verified ? { allocation: { ...verified.allocation, measuredKld: verified.measured.kld!.kldMean, measured: verified.measured, uniform: verified.uniform } } : {}), ...(written ? { report: written } : {}) });
      return;
    }
    process.stdout.write(`Mean KL-divergence with one MoE layer changed (${s.chunks} chunks of ${s.contextSize} tokens; default routing: PPL ${formatPerplexity(s.base.perplexity)})\n`);
    process.stdout.write(table(['layer', ...s.changes], s.facts.moeLayers.map((l, i) => [l, ...s.kld[i]!.map((x) => formatKld(x))])) + '\n');
    process.stdout.write('\nΔPPL with one MoE layer changed\n');
    process.stdout.write(table(['layer', ...s.changes], s.facts.moeLayers.map((l, i) => [l, ...s.deltaPercent[i]!.map((x) => formatDeltaPercent(x))])) + '\n');
    if (verified) {
      const v = verified;
      process.stdout.write(`\nAllocated schedule (${meanExperts !== undefined ? `mean experts ≤ ${meanExperts}` : `active parameters ≤ ${activeParams}`}): --experts '${v.allocation.experts}'\n`);
      process.stdout.write(
        table(
          ['routing', 'k̄', 'predicted KLD', 'mean KLD', 'same top', 'PPL', 'ΔPPL'],
          [
            ['default', s.base.expertsPerToken.toFixed(3), '-', formatKld(s.base.kldMean), formatPercent(100 * s.base.sameTop), formatPerplexity(s.base.perplexity), formatDeltaPercent(0)],
            [v.measured.routing.label, v.measured.expertsPerToken.mean.toFixed(3), formatKld(v.allocation.predictedKld), formatKld(v.measured.kld!.kldMean), formatPercent(100 * v.measured.kld!.sameTop), formatPerplexity(v.measured.perplexity), formatDeltaPercent((100 * (v.measured.perplexity - s.base.perplexity)) / s.base.perplexity)],
            ...v.uniform.map((u) => [u.routing.label, u.expertsPerToken.mean.toFixed(3), '-', formatKld(u.kld!.kldMean), formatPercent(100 * u.kld!.sameTop), formatPerplexity(u.perplexity), formatDeltaPercent((100 * (u.perplexity - s.base.perplexity)) / s.base.perplexity)]),
          ],
        ) + '\n',
      );
    }
    process.stdout.write(`${s.evaluated} evaluated, ${s.resumed} already in ${s.out}${written ? `\nreport: ${written.html}` : ''}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}
