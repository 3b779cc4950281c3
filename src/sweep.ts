/**
 * sweep(): every point of a routing grid evaluated on the same tokens with one loaded model and one
 * context; results appended to a JSONL file one line per point; running it again with the same `out`
 * skips the points already there (a resumed sweep gives the same table as an uninterrupted one).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

import { Context } from './context.js';
import { toAbortReason } from './errors.js';
import { type EvaluateResult, evaluate, inputTokens } from './evaluate.js';
import { modelFingerprint, stableJson, tokensFingerprint } from './fingerprint.js';
import { Model, loadModel } from './model.js';
import { readKldBaseHeader } from './reference.js';
import { ResultsFile } from './results-file.js';
import { RoutingProfile } from './profile.js';
import type { Routing } from './routing.js';
import { checkOptionNames, expected, integer, nonEmptyString, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface SweepGrid {
  experts?: (number | number[])[];
  expertScale?: (number | number[] | string)[];
  gateScale?: (number | number[])[];
  minWeightRatio?: number[];
}

export interface SweepOptions {
  grid: SweepGrid;
  text?: string;
  file?: string;
  tokens?: Int32Array | readonly number[];
  /** JSONL results file; also the resume state. */
  out: string;
  contextSize?: number;
  batchSize?: number;
  threads?: number;
  chunks?: number;
  /**
   * KL-divergence base: 'default' (this model with its own routing; its log-probabilities are written
   * once to `<out>.base.kld` and reused), or a base file path.
   */
  reference?: 'default' | string;
  /** A routing profile from calibrate(), for grid points with expertScale 'calibrated'. */
  profile?: RoutingProfile;
  onPoint?: (row: SweepRow, done: number, total: number) => void;
  onProgress?: (p: { point: number; points: number; chunksDone: number; chunksTotal: number }) => void;
  signal?: AbortSignal;
}

export interface SweepRow {
  key: string;
  point: Routing;
  routing: string;
  experts: number[];
  expertScale: number[];
  gateScale: number[];
  minWeightRatio: number | null;
  perplexity: number;
  stderr: number;
  nll: number;
  kldMean: number | null;
  kldUnc: number | null;
  sameTop: number | null;
  tokensPerSecond: number;
  elapsedMs: number;
  model: string;
  fileType: string;
  contextSize: number;
  chunks: number;
  text: string;
}

export interface SweepResult {
  out: string;
  rows: SweepRow[];
  /** Points found already done in `out`. */
  resumed: number;
  evaluated: number;
}

const GRID_KEYS = ['experts', 'expertScale', 'gateScale', 'minWeightRatio'] as const;

export function gridPoints(grid: SweepGrid): Routing[] {
  const g = optionsObject(grid, 'grid');
  checkOptionNames(g, GRID_KEYS, 'sweep grid');
  let points: Routing[] = [{}];
  for (const k of GRID_KEYS) {
    const values = g[k];
    if (values === undefined) continue;
    if (!Array.isArray(values) || values.length === 0) throw new TypeError(expected('a non-empty array of values', `grid.${k}`, values));
    points = points.flatMap((p) => values.map((v) => ({ ...p, [k]: v })));
  }
  return points;
}

export async function sweep(target: Model | string, options: SweepOptions): Promise<SweepResult> {
  const o = optionsObject(options, 'sweep options');
  checkOptionNames(o, ['grid', 'text', 'file', 'tokens', 'out', 'contextSize', 'batchSize', 'threads', 'chunks', 'reference', 'profile', 'onPoint', 'onProgress', 'signal'], 'sweep()');
  if (o.profile !== undefined && !(o.profile instanceof RoutingProfile)) throw new TypeError(expected('a RoutingProfile', 'profile', o.profile));
  const points = gridPoints(o.grid as SweepGrid);
  const out = resolve(nonEmptyString(o.out, 'out'));
  const signal = optionalSignal(o.signal, 'signal');
  const onPoint = optionalFunction<NonNullable<SweepOptions['onPoint']>>(o.onPoint, 'onPoint');
  const onProgress = optionalFunction<NonNullable<SweepOptions['onProgress']>>(o.onProgress, 'onProgress');
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  if (o.reference !== undefined && typeof o.reference !== 'string') throw new TypeError(expected("'default' or a base file path", 'reference', o.reference));
  if (signal?.aborted) throw toAbortReason(signal);

  const model = typeof target === 'string' ? await loadModel(target, { signal }) : target;
  if (!(model instanceof Model)) throw new TypeError(expected('a Model or a model path', 'sweep() target', target));
  const results = new ResultsFile<SweepRow>(out);
  let ctx: Context | undefined;
  try {
    const tokens = await inputTokens(model, o, 'sweep()');
    const info = model.info;
    const maxExperts = Math.max(info.expertsUsed, ...points.flatMap((p) => (p.experts === undefined ? [] : [p.experts].flat() as number[])));
    ctx = await model.createContext({
      contextSize: o.contextSize as number | undefined,
      batchSize: o.batchSize as number | undefined,
      threads: o.threads as number | undefined,
      routing: info.expertCount > 0 ? { experts: maxExperts } : {},
    });
    const base = { model: await modelFingerprint(model.path), text: tokensFingerprint(tokens), contextSize: ctx.options.contextSize, batchSize: ctx.options.batchSize, chunks: chunks ?? null };

    let reference: string | undefined;
    if (o.reference === 'default') {
      reference = `${out}.base.kld`;
      const usable = existsSync(reference) && (await readKldBaseHeader(reference).then((h) => tokensFingerprint(h.tokens.subarray(0, Math.min(h.tokens.length, tokens.length))) === tokensFingerprint(tokens.subarray(0, h.tokens.length)), () => false));
      if (!usable) await evaluate(ctx, { tokens, ...(chunks ? { chunks } : {}), routing: {}, saveReference: reference, signal });
    } else if (typeof o.reference === 'string') {
      reference = resolve(o.reference);
    }

    let resumed = 0;
    let evaluated = 0;
    const rows: SweepRow[] = [];
    for (const [i, point] of points.entries()) {
      const key = stableJson({ ...base, reference: o.reference ?? null, point, profile: point.expertScale === 'calibrated' ? ((o.profile as RoutingProfile | undefined)?.data.text.fingerprint ?? null) : undefined });
      const done = results.get(key);
      if (done) {
        resumed++;
        rows.push(done);
        onPoint?.(done, i + 1, points.length);
        continue;
      }
      if (signal?.aborted) throw toAbortReason(signal);
      const r: EvaluateResult = await evaluate(ctx, {
        ...(reference ? { reference } : { tokens }),
        ...(chunks ? { chunks } : {}),
        routing: point.expertScale === 'calibrated' ? { ...point, profile: o.profile as RoutingProfile } : point,
        signal,
        onProgress: (p) => onProgress?.({ point: i + 1, points: points.length, chunksDone: p.chunksDone, chunksTotal: p.chunksTotal }),
      });
      const row: SweepRow = {
        key,
        point,
        routing: r.routing.label,
        experts: r.routing.experts,
        expertScale: r.routing.expertScale,
        gateScale: r.routing.gateScale,
        minWeightRatio: r.routing.minWeightRatio,
        perplexity: r.perplexity,
        stderr: r.stderr,
        nll: r.nll,
        kldMean: r.kld?.kldMean ?? null,
        kldUnc: r.kld?.kldUnc ?? null,
        sameTop: r.kld?.sameTop ?? null,
        tokensPerSecond: r.tokensPerSecond,
        elapsedMs: r.elapsedMs,
        model: model.path,
        fileType: info.fileType,
        contextSize: r.contextSize,
        chunks: r.chunks.length,
        text: base.text,
      };
      results.append(row);
      rows.push(row);
      evaluated++;
      onPoint?.(row, i + 1, points.length);
    }
    return { out, rows, resumed, evaluated };
  } finally {
    results.close();
    await ctx?.dispose();
    if (typeof target === 'string') await model.dispose();
  }
}
