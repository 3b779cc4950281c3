/**
 * sweep(): every point of a routing grid evaluated on the same tokens with one loaded model and one
 * context; results appended to a JSONL file one line per point; running it again with the same `out`
 * skips the points already there (a resumed sweep gives the same table as an uninterrupted one).
 */
import { resolve } from 'node:path';

import { toAbortReason } from './errors.js';
import { type EvaluateResult, INPUT_OPTIONS, type RunOptions, defaultRoutingBase, evaluate, inputTokens } from './evaluate.js';
import { modelFingerprint, stableJson, tokensFingerprint } from './fingerprint.js';
import { Model, loadModel } from './model.js';
import { kldTopKOption } from './reference.js';
import { compareAccuracy, multipleChoice } from './multiple-choice.js';
import type { TaskKind } from './multiple-choice/common.js';
import { ResultsFile } from './results-file.js';
import { RoutingProfile } from './profile.js';
import { type ResolvedRouting, type Routing, resolveRouting } from './routing.js';
import { CONTEXT_SIZE_OPTIONS, Context, contextSizes, resolveContextOptions, settingsKey } from './context.js';
import { type HalvingDrop, type HalvingSummary, runHalving } from './sweep-halving.js';
import { checkOptionNames, closest, expected, integer, nonEmptyString, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface SweepGrid {
  experts?: (number | number[])[];
  expertScale?: (number | number[] | string)[];
  gateScale?: (number | number[])[];
  minWeightRatio?: number[];
}

export interface SweepOptions extends RunOptions {
  /** The points: every combination of these values (gridPoints()). Give `grid` or `routings`. */
  grid?: SweepGrid;
  /** The points as a list of routings, evaluated in this order. Give `grid` or `routings`. */
  routings?: Routing[];
  /**
   * KL-divergence base: 'default' (this model with its own routing; its log-probabilities are written
   * once to `<out>.base.kld` and reused), or a base file path.
   */
  reference?: 'default' | string;
  /** With reference 'default': write its base in the compact format, the top kldTopK log-probabilities per token (docs/kld-compact.md). */
  kldTopK?: number;
  /** A routing profile from calibrate(), for points with expertScale 'calibrated'. */
  profile?: RoutingProfile;
  /**
   * Also task accuracy at every point (multipleChoice(): llama-perplexity's HellaSwag, Winogrande or
   * multiple-choice score), with the answers that flipped against the model's own routing.
   */
  accuracy?: { task: TaskKind; file: string; tasks?: number };
  /**
   * 'grid' (default): every point on every chunk. 'halving': successive halving (docs/search.md): every
   * point on the first `initialChunks` chunks, then rounds that drop the points significantly worse than
   * the current best (one-sided paired t-test on per-chunk NLL, or KLD with a reference) and double the
   * chunks of the others, until one is left or every chunk is used.
   */
  strategy?: 'grid' | 'halving';
  /** halving: chunks of the first round (default: see docs/search.md). */
  initialChunks?: number;
  /** halving: the chance of dropping the truly best point over the whole search (Bonferroni-split; default 0.05). */
  alpha?: number;
  onPoint?: (row: SweepRow, done: number, total: number) => void;
  /**
   * Chunks of the point under way (point 0: the reference's base, written first with `reference: 'default'`).
   * With halving: `point` of `points` are the point's place among the points of round `round` (1-based) of
   * at most `rounds`, and [`fromChunk`, `toChunk`) the piece under way.
   */
  onProgress?: (p: { point: number; points: number; routing: string; chunksDone: number; chunksTotal: number; round?: number; rounds?: number; fromChunk?: number; toChunk?: number }) => void;
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
  /** With `accuracy`: percent correct, its ±, and the flips against the model's own routing (exact McNemar p). */
  accuracy?: { accuracy: number; uncertainty: number; tasks: number; rightToWrong: number; wrongToRight: number; pValue: number };
  tokensPerSecond: number;
  /** k̄: experts mixed per token, measured from the graph (mean over MoE layers). */
  expertsPerToken: number;
  /** CPU threads tokensPerSecond was measured with. */
  threads: number;
  elapsedMs: number;
  model: string;
  fileType: string;
  contextSize: number;
  /** Chunks this point was evaluated on (with halving, fewer for a point dropped early). */
  chunks: number;
  text: string;
  /** halving: why the point was dropped (null: it survived to the end). */
  dropped?: HalvingDrop | null;
  /** halving: the point the search chose (lowest mean NLL, or KLD, of the survivors). */
  best?: boolean;
}

export interface SweepResult {
  out: string;
  rows: SweepRow[];
  /** Points found already done in `out`. */
  resumed: number;
  evaluated: number;
  /** Points left out because they resolve to the same routing as an earlier point (e.g. uniform scale at the model's own count). */
  duplicates: { routing: Routing; sameAs: string }[];
  strategy: 'grid' | 'halving';
  /** Tokens decoded for the points (chunks × contextSize, summed; the KL-divergence base not included; resumed work included). */
  tokensEvaluated: number;
  /** halving: the procedure's record. */
  halving?: HalvingSummary;
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

const SWEEP_OPTIONS = ['grid', 'routings', ...INPUT_OPTIONS, 'out', ...CONTEXT_SIZE_OPTIONS, 'chunks', 'reference', 'kldTopK', 'profile', 'accuracy', 'strategy', 'initialChunks', 'alpha', 'onPoint', 'onProgress', 'signal'] as const;
const STRATEGIES = ['grid', 'halving'] as const;

/** A resolved routing's identity: two points with the same one evaluate the same graph. */
function routingKey(r: ResolvedRouting): string {
  return stableJson({ experts: r.experts, expertScale: r.expertScale, gateScale: r.gateScale, ser: [r.minExperts, r.minWeightRatio], topP: r.topP, mask: r.maskExperts });
}

/** The `strategy` option checked ('grid' when undefined); a misspelling gets a suggestion. */
export function sweepStrategy(value: unknown): 'grid' | 'halving' {
  if (value === undefined) return 'grid';
  if (STRATEGIES.includes(value as never)) return value as 'grid' | 'halving';
  const best = typeof value === 'string' ? closest(value, STRATEGIES) : undefined;
  throw new TypeError(expected("'grid' or 'halving'", 'strategy', value) + (best ? `. Did you mean '${best}'?` : ''));
}

export async function sweep(target: Model | string, options: SweepOptions): Promise<SweepResult> {
  const o = optionsObject(options, 'sweep options');
  checkOptionNames(o, SWEEP_OPTIONS, 'sweep()');
  if (o.profile !== undefined && !(o.profile instanceof RoutingProfile)) throw new TypeError(expected('a RoutingProfile', 'profile', o.profile));
  if ((o.grid === undefined) === (o.routings === undefined)) throw new TypeError('Expected exactly one of grid or routings for sweep()');
  if (o.routings !== undefined && (!Array.isArray(o.routings) || o.routings.length === 0)) throw new TypeError(expected('a non-empty array of routings', 'routings', o.routings));
  const given = o.routings !== undefined ? (o.routings as Routing[]) : gridPoints(o.grid as SweepGrid);
  const out = resolve(nonEmptyString(o.out, 'out'));
  const signal = optionalSignal(o.signal, 'signal');
  const onPoint = optionalFunction<NonNullable<SweepOptions['onPoint']>>(o.onPoint, 'onPoint');
  const onProgress = optionalFunction<NonNullable<SweepOptions['onProgress']>>(o.onProgress, 'onProgress');
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  if (o.reference !== undefined && typeof o.reference !== 'string') throw new TypeError(expected("'default' or a base file path", 'reference', o.reference));
  const kldTopK = kldTopKOption(o.kldTopK);
  if (kldTopK !== undefined && o.reference !== 'default') throw new TypeError("kldTopK sets the format of the base sweep writes with reference 'default'; a base file is read in its own format");
  resolveContextOptions(o, 'sweep'); // sizes checked before anything is loaded
  const accuracy = o.accuracy === undefined ? undefined : optionsObject(o.accuracy, 'accuracy');
  if (accuracy) {
    checkOptionNames(accuracy, ['task', 'file', 'tasks'], 'sweep() accuracy');
    nonEmptyString(accuracy.file, 'accuracy.file');
  }
  const strategy = sweepStrategy(o.strategy);
  if (strategy === 'grid') {
    for (const k of ['initialChunks', 'alpha'] as const) if (o[k] !== undefined) throw new TypeError(`${k} is an option of strategy 'halving'; the grid evaluates every point on every chunk`);
  }
  if (strategy === 'halving' && accuracy) throw new TypeError("accuracy needs every point evaluated in full; it cannot be combined with strategy 'halving'");
  const initialChunks = o.initialChunks === undefined ? undefined : integer(o.initialChunks, 'initialChunks', 2, 2 ** 31 - 1);
  if (o.alpha !== undefined && (typeof o.alpha !== 'number' || !(o.alpha > 0 && o.alpha < 0.5))) {
    throw new (typeof o.alpha === 'number' ? RangeError : TypeError)(expected('a number in (0, 0.5)', 'alpha', o.alpha));
  }
  const alpha = (o.alpha ?? 0.05) as number;
  if (signal?.aborted) throw toAbortReason(signal);

  const model = typeof target === 'string' ? await loadModel(target, signal ? { signal } : {}) : target;
  if (!(model instanceof Model)) throw new TypeError(expected('a Model or a model path', 'sweep() target', target));
  let results: ResultsFile<SweepRow> | undefined;
  let ctx: Context | undefined;
  try {
    const info = model.info;
    // every point resolved (and so checked) before the first evaluation; duplicates dropped
    const withProfile = (p: Routing): Routing => (typeof p.expertScale === 'string' && p.expertScale.trim() === 'calibrated' && p.profile === undefined && o.profile ? { ...p, profile: o.profile as RoutingProfile } : p);
    const points: { routing: Routing; resolved: ResolvedRouting; key: string }[] = [];
    const duplicates: SweepResult['duplicates'] = [];
    for (const p of given) {
      const routing = withProfile(p);
      const resolved = resolveRouting(routing, info);
      const key = routingKey(resolved);
      const earlier = points.find((q) => q.key === key);
      if (earlier) duplicates.push({ routing: p, sameAs: earlier.resolved.label });
      else points.push({ routing, resolved, key });
    }
    const tokens = await inputTokens(model, o, 'sweep()');
    ctx = await model.createContext({
      ...contextSizes(o),
      routing: info.expertCount > 0 ? { experts: Math.max(info.expertsUsed, ...points.flatMap((p) => p.resolved.experts)) } : {},
    });
    const basis = {
      model: await modelFingerprint(model.path),
      text: tokensFingerprint(tokens),
      contextSize: ctx.options.contextSize,
      batchSize: ctx.options.batchSize,
      ...settingsKey(ctx.options),
      chunks: chunks ?? null,
      reference: o.reference ?? null,
      kldTopK, // absent from the key when not given, so earlier results files still resume
      ...(accuracy ? { accuracy: { task: accuracy.task, file: resolve(accuracy.file as string), tasks: accuracy.tasks ?? null } } : {}),
      ...(strategy === 'halving' ? { strategy, initialChunks: initialChunks ?? null, alpha } : {}),
    };
    results = new ResultsFile<SweepRow>(out, { kind: 'sweep', basis });

    let reference: string | undefined;
    if (o.reference === 'default') {
      reference = await defaultRoutingBase(ctx, out, tokens, {
        chunks,
        kldTopK,
        signal,
        onProgress: (p) => onProgress?.({ point: 0, points: points.length, routing: 'default (the KL-divergence reference)', chunksDone: p.chunksDone, chunksTotal: p.chunksTotal }),
      });
    } else if (typeof o.reference === 'string') {
      reference = resolve(o.reference);
    }

    if (strategy === 'halving') {
      const h = await runHalving({
        model,
        ctx,
        points,
        tokens,
        results,
        textFingerprint: basis.text,
        alpha,
        ...(reference ? { reference } : {}),
        ...(chunks ? { chunks } : {}),
        ...(initialChunks ? { initialChunks } : {}),
        ...(signal ? { signal } : {}),
        ...(onPoint ? { onPoint } : {}),
        ...(onProgress ? { onProgress } : {}),
      });
      return { out, rows: h.rows, resumed: h.resumed, evaluated: h.evaluated, duplicates, strategy, tokensEvaluated: h.tokensEvaluated, halving: h.summary };
    }

    // task accuracy: the model's own routing once, then every point against it (same tasks, same settings)
    const sizes = { contextSize: ctx.options.contextSize, threads: ctx.options.threads };
    const score = (routing: Routing) =>
      multipleChoice(model, { task: accuracy!.task as TaskKind, file: accuracy!.file as string, ...(accuracy!.tasks === undefined ? {} : { tasks: accuracy!.tasks as number }), routing, ...sizes, ...(signal ? { signal } : {}) });
    const accuracyBase = accuracy && points.some((p) => !results!.get(p.key)) ? await score({}) : undefined;

    let resumed = 0;
    let evaluated = 0;
    const rows: SweepRow[] = [];
    for (const [i, point] of points.entries()) {
      const done = results.get(point.key);
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
        routing: point.routing,
        signal,
        onProgress: (p) => onProgress?.({ point: i + 1, points: points.length, routing: point.resolved.label, chunksDone: p.chunksDone, chunksTotal: p.chunksTotal }),
      });
      const accuracyOf = async (routing: Routing): Promise<NonNullable<SweepRow['accuracy']>> => {
        const a = await score(routing);
        const c = compareAccuracy(a, accuracyBase!);
        return { accuracy: a.accuracy, uncertainty: a.uncertainty, tasks: a.tasks, rightToWrong: c.flips.rightToWrong, wrongToRight: c.flips.wrongToRight, pValue: c.pValue };
      };
      const row: SweepRow = {
        key: point.key,
        point: { ...point.routing, profile: undefined },
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
        ...(accuracyBase ? { accuracy: await accuracyOf(point.routing) } : {}),
        tokensPerSecond: r.tokensPerSecond,
        expertsPerToken: r.expertsPerToken.mean,
        threads: r.threads,
        elapsedMs: r.elapsedMs,
        model: model.path,
        fileType: info.fileType,
        contextSize: r.contextSize,
        chunks: r.chunks.length,
        text: basis.text,
      };
      results.append(row);
      rows.push(row);
      evaluated++;
      onPoint?.(row, i + 1, points.length);
    }
    return { out, rows, resumed, evaluated, duplicates, strategy, tokensEvaluated: rows.reduce((n, r) => n + r.chunks * r.contextSize, 0) };
  } finally {
    results?.close();
    await ctx?.dispose();
    if (typeof target === 'string') await model.dispose();
  }
}
