/**
 * The demo's pruning section: the experts ranked on the demo's calibration profile by each criterion,
 * 0 / 12.5 / 25 / 50 % of them masked at runtime, PPL and KL-divergence against the stock model on the
 * demo's evaluation text (its base file reused from the experts sweep), the table and the plots.
 */
import { rmSync } from 'node:fs';

import { formatDeltaPercent, formatKld, formatPercent, formatPerplexity, formatStderr } from '../format.js';
import type { Model } from '../model.js';
import type { RoutingProfile } from '../profile.js';
import type { PruneCriterion } from '../prune.js';
import { type PruneSweepResult, pruneSweep } from '../prune-sweep.js';
import { renderPrunePlots } from '../report/prune.js';
import type { Plot } from '../report/types.js';
import { table } from './output.js';
import type { Progress } from './progress.js';

export const DEMO_PRUNE_RATIOS = [0, 0.125, 0.25, 0.5];
export const DEMO_PRUNE_CRITERIA: PruneCriterion[] = ['reap', 'frequency', 'weight', 'random'];

export interface DemoPruneSection {
  result: PruneSweepResult;
  plots: Plot[];
  /** The table as printed. */
  text: string;
}

export async function demoPruneSection(
  model: Model,
  o: { tokens: Int32Array; profile: RoutingProfile; out: string; reference: string; contextSize: number; threads?: number; bar: Progress; signal: AbortSignal },
): Promise<DemoPruneSection> {
  rmSync(o.out, { force: true });
  const result = await pruneSweep(model, {
    tokens: o.tokens,
    profile: o.profile,
    ratios: DEMO_PRUNE_RATIOS,
    by: DEMO_PRUNE_CRITERIA,
    out: o.out,
    reference: o.reference,
    contextSize: o.contextSize,
    batchSize: 4 * o.contextSize,
    ...(o.threads === undefined ? {} : { threads: o.threads }),
    signal: o.signal,
    onProgress: (p) => {
      o.bar.points(Math.max(0, p.point - 1), p.points, `pruning: ${p.routing}`);
      o.bar.chunks(p.chunksDone, p.chunksTotal);
    },
  });
  const base = result.rows.find((r) => r.ratio === 0)!;
  const N = o.profile.expertCount;
  const text = table(
    ['criterion', 'pruned', 'experts per layer', 'PPL', '±', 'ΔPPL', 'mean KLD', 'same top'],
    result.rows.map((r) => [
      r.by,
      formatPercent(100 * r.ratio),
      `${N - r.removedPerLayer[0]!} of ${N}`,
      formatPerplexity(r.perplexity),
      formatStderr(r.stderr),
      formatDeltaPercent((100 * (r.perplexity - base.perplexity)) / base.perplexity),
      // the unpruned model is the reference itself: 0, as the other tables report it
      formatKld(r.ratio === 0 ? 0 : r.kldMean),
      formatPercent(r.ratio === 0 ? 100 : r.sameTop === null ? null : 100 * r.sameTop),
    ]),
  );
  const plots = await renderPrunePlots(result.rows.map((r) => (r.ratio === 0 ? { ...r, kldMean: 0 } : r)), o.profile.data);
  return { result, plots, text };
}
