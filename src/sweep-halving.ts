/**
 * sweep({ strategy: 'halving' }): successive halving over the points of a grid (docs/search.md).
 *
 * Round r (r = 0, 1, …) gives every point still in the search the chunks [0, c_r), c_r = min(N, c_0·2^r),
 * evaluating only the piece [c_{r-1}, c_r) it does not have yet. On those chunks the leader is the point
 * with the lowest mean per-chunk NLL (or KLD, with a reference); every other point is compared with it by
 * a one-sided paired t-test on the per-chunk differences d_j = x_j(point) − x_j(leader) (same chunks,
 * same tokens) and dropped when t = mean(d)/(sd(d)/√n) exceeds Student's t critical value at
 * α_r = α / (R·(K_r − 1)) with n − 1 degrees of freedom (R rounds at most, K_r points in round r). The
 * search ends when one point is left or every chunk is used; the best point is the survivor with the
 * lowest mean.
 *
 * Resume: every evaluated piece is a line of the results file (its chunks' sums, ChunkResult), and each
 * point's row is appended when the point is dropped or the search ends. The procedure is a function of
 * the pieces, so a rerun after a crash reads the pieces it has, evaluates only the missing ones and comes
 * to the same decisions.
 */
import type { Context } from './context.js';
import { type ChunkResult, combineChunks, evaluate } from './evaluate.js';
import { toAbortReason } from './errors.js';
import type { Model } from './model.js';
import { readKldBaseHeader } from './reference.js';
import type { ResultsFile } from './results-file.js';
import type { ResolvedRouting, Routing } from './routing.js';
import { studentTCritical } from './student-t.js';
import type { SweepOptions, SweepRow } from './sweep.js';

/** Why a point left the search. */
export interface HalvingDrop {
  /** The round (0-based) and the chunks [0, chunks) both points had. */
  round: number;
  chunks: number;
  /** The leader it was compared with (its label, as in the table). */
  against: string;
  /** 'nll' (nats per token) or 'kld'. */
  metric: 'nll' | 'kld';
  /** Mean over the chunks of this point's per-chunk mean minus the leader's, its t statistic, and the test's critical value. */
  meanDifference: number;
  t: number;
  df: number;
  critical: number;
  /** The one-sided level of this test: alpha / (rounds × (points in the round − 1)). */
  alpha: number;
}

export interface HalvingRound {
  round: number;
  /** Chunks [0, chunks) every point of the round has after it. */
  chunks: number;
  /** Points in the round, and those it dropped. */
  points: number;
  dropped: number;
  leader: string;
}

export interface HalvingSummary {
  metric: 'nll' | 'kld';
  /** N: the chunks a point gets when it survives to the end. */
  totalChunks: number;
  initialChunks: number;
  alpha: number;
  /** R: the most rounds there can be (1 + ⌈log2(N / c_0)⌉). */
  maxRounds: number;
  rounds: HalvingRound[];
  /** The point the search chose. */
  best: string;
  /** What the full grid would decode: points × N × contextSize. */
  tokensFullGrid: number;
}

/** One evaluated piece of a point: a line of the results file. */
interface HalvingPiece {
  key: string;
  piece: { point: string; from: number; to: number };
  chunks: ChunkResult[];
  elapsedMs: number;
  expertsPerToken: number;
  threads: number;
}

interface Point {
  routing: Routing;
  resolved: ResolvedRouting;
  key: string;
}

export interface HalvingSetup {
  model: Model;
  ctx: Context;
  points: Point[];
  tokens: Int32Array;
  /** The KL-divergence base file (KLD is the metric then). */
  reference?: string;
  chunks?: number;
  initialChunks?: number;
  alpha: number;
  results: ResultsFile<SweepRow>;
  textFingerprint: string;
  signal?: AbortSignal;
  onPoint?: SweepOptions['onPoint'];
  onProgress?: SweepOptions['onProgress'];
}

/** c_0 when not given: N/64 rounded up, at least 2 (the first round's t-test needs 2 chunks). */
export function defaultInitialChunks(totalChunks: number): number {
  return Math.min(totalChunks, Math.max(2, Math.ceil(totalChunks / 64)));
}

/** The one-sided paired t-test of `x` worse (higher) than `leader` on the same chunks. */
export function pairedTest(x: readonly number[], leader: readonly number[]): { meanDifference: number; t: number; df: number } {
  const n = x.length;
  const d = x.map((v, i) => v - leader[i]!);
  const mean = d.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? d.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (n - 1) : 0;
  const t = variance > 0 ? mean / Math.sqrt(variance / n) : mean > 0 ? Infinity : mean < 0 ? -Infinity : 0;
  return { meanDifference: mean, t, df: n - 1 };
}

const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;

export async function runHalving(s: HalvingSetup): Promise<{ rows: SweepRow[]; resumed: number; evaluated: number; tokensEvaluated: number; summary: HalvingSummary }> {
  const { model, ctx, points, results, signal } = s;
  const file = results as unknown as ResultsFile<SweepRow | HalvingPiece>;
  const info = model.info;
  const contextSize = ctx.options.contextSize;
  const metric: 'nll' | 'kld' = s.reference ? 'kld' : 'nll';
  const textChunks = s.reference && s.reference !== '' ? (await readKldBaseHeader(s.reference)).chunks : Math.floor(s.tokens.length / contextSize);
  const N = Math.min(s.chunks ?? textChunks, textChunks);
  // one point alone has nothing to be compared with: it gets every chunk
  const c0 = points.length === 1 ? N : Math.min(N, s.initialChunks ?? defaultInitialChunks(N));
  const R = 1 + Math.ceil(Math.log2(N / c0));
  const alpha = s.alpha;

  const have = new Map<string, ChunkResult[]>(points.map((p) => [p.key, []]));
  const pieces = new Map<string, HalvingPiece[]>(points.map((p) => [p.key, []]));
  for (const row of file.rows) {
    if ('piece' in row && have.has(row.piece.point)) {
      pieces.get(row.piece.point)!.push(row);
      have.get(row.piece.point)!.push(...row.chunks);
    }
  }
  const metricOf = (c: ChunkResult) => (metric === 'kld' ? c.kld!.mean : c.nll);
  const series = (key: string, n: number) => [...have.get(key)!].sort((a, b) => a.index - b.index).slice(0, n).map(metricOf);

  let tokensEvaluated = 0;
  let resumed = 0;
  let evaluated = 0;
  const rowOf = new Map<string, SweepRow>();
  const finalRows: SweepRow[] = [];
  const finish = (p: Point, chunkCount: number, dropped: HalvingDrop | null, best: boolean) => {
    const saved = file.get(p.key) as SweepRow | undefined;
    let row: SweepRow;
    if (saved && !('piece' in saved)) {
      row = saved;
      resumed++;
    } else {
      const chunks = [...have.get(p.key)!].sort((a, b) => a.index - b.index).slice(0, chunkCount);
      const total = combineChunks(chunks);
      const ps = pieces.get(p.key)!.filter((x) => x.piece.to <= chunkCount);
      const elapsedMs = ps.reduce((a, x) => a + x.elapsedMs, 0);
      const decoded = ps.reduce((a, x) => a + (x.piece.to - x.piece.from) * contextSize, 0);
      row = {
        key: p.key,
        point: { ...p.routing, profile: undefined },
        routing: p.resolved.label,
        experts: p.resolved.experts,
        expertScale: p.resolved.expertScale,
        gateScale: p.resolved.gateScale,
        minWeightRatio: p.resolved.minWeightRatio,
        perplexity: total.perplexity,
        stderr: total.stderr,
        nll: total.nll,
        kldMean: total.kldMean,
        kldUnc: total.kldUnc,
        sameTop: total.sameTop,
        tokensPerSecond: elapsedMs > 0 ? (decoded * 1000) / elapsedMs : 0,
        // k̄ of each piece weighted by its tokens: the mean over every token evaluated
        expertsPerToken: decoded > 0 ? ps.reduce((a, x) => a + x.expertsPerToken * (x.piece.to - x.piece.from) * contextSize, 0) / decoded : 0,
        threads: ctx.options.threads,
        elapsedMs,
        model: model.path,
        fileType: info.fileType,
        contextSize,
        chunks: chunkCount,
        text: s.textFingerprint,
        dropped,
        best,
      };
      file.append(row);
      evaluated++;
    }
    rowOf.set(p.key, row);
    finalRows.push(row);
    s.onPoint?.(row, finalRows.length, points.length);
  };

  let alive = [...points];
  const rounds: HalvingRound[] = [];
  let prev = 0;
  for (let r = 0; ; r++) {
    const cr = Math.min(N, c0 * 2 ** r);
    // evaluate the piece [prev, cr) of every point still in the search (or read it from the file)
    for (const [j, p] of alive.entries()) {
      const key = `${p.key}#${prev}-${cr}`;
      if (!file.get(key)) {
        if (signal?.aborted) throw toAbortReason(signal);
        const e = await evaluate(ctx, {
          ...(s.reference ? { reference: s.reference } : { tokens: s.tokens }),
          firstChunk: prev,
          chunks: cr - prev,
          routing: p.routing,
          ...(signal ? { signal } : {}),
          onProgress: (q) => s.onProgress?.({ point: j + 1, points: alive.length, routing: p.resolved.label, chunksDone: q.chunksDone, chunksTotal: q.chunksTotal, round: r + 1, rounds: R, fromChunk: prev, toChunk: cr }),
        });
        const piece: HalvingPiece = { key, piece: { point: p.key, from: prev, to: cr }, chunks: e.chunks, elapsedMs: e.elapsedMs, expertsPerToken: e.expertsPerToken.mean, threads: e.threads };
        file.append(piece);
        pieces.get(p.key)!.push(piece);
        have.get(p.key)!.push(...e.chunks);
      }
      tokensEvaluated += (cr - prev) * contextSize;
      s.onProgress?.({ point: j + 1, points: alive.length, routing: p.resolved.label, chunksDone: cr - prev, chunksTotal: cr - prev, round: r + 1, rounds: R, fromChunk: prev, toChunk: cr });
    }
    // the leader on [0, cr), and the paired test of every other point against it
    const values = new Map(alive.map((p) => [p.key, series(p.key, cr)]));
    const leader = alive.reduce((b, p) => (mean(values.get(p.key)!) < mean(values.get(b.key)!) ? p : b));
    const level = alive.length > 1 ? alpha / (R * (alive.length - 1)) : alpha;
    const critical = cr >= 2 ? studentTCritical(level, cr - 1) : Infinity;
    const survivors: Point[] = [];
    let droppedHere = 0;
    for (const p of alive) {
      if (p === leader) {
        survivors.push(p);
        continue;
      }
      const test = pairedTest(values.get(p.key)!, values.get(leader.key)!);
      if (test.t > critical) {
        droppedHere++;
        finish(p, cr, { round: r, chunks: cr, against: leader.resolved.label, metric, meanDifference: test.meanDifference, t: test.t, df: test.df, critical, alpha: level }, false);
      } else survivors.push(p);
    }
    rounds.push({ round: r, chunks: cr, points: alive.length, dropped: droppedHere, leader: leader.resolved.label });
    alive = survivors;
    prev = cr;
    if (alive.length === 1 || cr >= N) {
      const best = alive.reduce((b, p) => (mean(values.get(p.key)!) < mean(values.get(b.key)!) ? p : b));
      for (const p of alive) finish(p, cr, null, p === best);
      const rows = points.map((p) => rowOf.get(p.key)!);
      return {
        rows,
        resumed,
        evaluated,
        tokensEvaluated,
        summary: { metric, totalChunks: N, initialChunks: c0, alpha, maxRounds: R, rounds, best: best.resolved.label, tokensFullGrid: points.length * N * contextSize },
      };
    }
  }
}
