/**
 * pruneSweep(): calibrate once (or take a profile), then evaluate every (pruning ratio × criterion) as
 * a runtime mask on one loaded model and one context — sweep()'s machinery: the same resumable JSONL
 * results file (header, lock, one flushed line per point), the same KL-divergence reference, points
 * that come out as the same mask evaluated once. The profile is kept beside the results file
 * (`<out>.profile.json`) and reused by a rerun on the same model and calibration text, so a resumed
 * sweep ranks the experts exactly as the first run did.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

import { calibrate } from './calibrate.js';
import { CONTEXT_SIZE_OPTIONS, contextOptionsOf, type ContextSettings, resolveContextOptions } from './context.js';
import { toAbortReason } from './errors.js';
import { INPUT_OPTIONS, inputTokens } from './evaluate.js';
import { modelFingerprint, tokensFingerprint } from './fingerprint.js';
import { Model, loadModel } from './model.js';
import { RoutingProfile } from './profile.js';
import { PRUNE_CRITERIA, type PruneCriterion, type PruneScope, expertsRemoved, pruneExperts, pruneMask } from './prune.js';
import { resolveRouting } from './routing.js';
import { type SweepResult, type SweepRow, sweep } from './sweep.js';
import { checkOptionNames, expected, integer, nonEmptyString, numberInRange, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface PruneSweepOptions extends ContextSettings {
  /** The evaluation text: exactly one of text, file, tokens. */
  text?: string;
  file?: string;
  tokens?: Int32Array | readonly number[];
  /** The calibration text the experts are ranked on (one of text, file, tokens). Give this or `profile`. */
  calibration?: { text?: string; file?: string; tokens?: Int32Array | readonly number[] };
  /** A routing profile (version 3) measured on this model, instead of calibrating. */
  profile?: RoutingProfile;
  /** Fractions of experts removed, each in [0, 1). */
  ratios: number[];
  /** Criteria (default ['reap', 'frequency', 'random']). */
  by?: PruneCriterion[];
  scope?: PruneScope;
  seed?: number;
  /** JSONL results file (created with its folder); also the resume state. */
  out: string;
  /** KL-divergence reference: 'default' (the model's own routing, written once beside `out`) or a base file. */
  reference?: 'default' | string;
  /** Evaluation chunks per point. */
  chunks?: number;
  /** Calibration chunks (default: all of the calibration text). */
  calibrationChunks?: number;
  onCalibrate?: (p: { chunksDone: number; chunksTotal: number }) => void;
  onProgress?: (p: { point: number; points: number; routing: string; chunksDone: number; chunksTotal: number }) => void;
  onPoint?: (row: SweepRow, done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface PruneRow {
  ratio: number;
  by: PruneCriterion;
  /** Experts removed per MoE layer (per-layer scope: the same in every layer) and the fraction of all routed experts kept. */
  removedPerLayer: number[];
  keptFraction: number;
  maskExperts: string;
  /** The evaluated routing's label (points with the same mask share one evaluation). */
  routing: string;
  perplexity: number;
  stderr: number;
  kldMean: number | null;
  kldUnc: number | null;
  sameTop: number | null;
  expertsPerToken: number;
  tokensPerSecond: number;
  threads: number;
}

export interface PruneSweepResult {
  out: string;
  profile: RoutingProfile;
  /** Where the profile was kept (null when it was given), and whether it was measured in this run (false: reused or given). */
  profilePath: string | null;
  calibrated: boolean;
  scope: PruneScope;
  rows: PruneRow[];
  sweep: SweepResult;
}

const OPTIONS = [...INPUT_OPTIONS, 'calibration', 'profile', 'ratios', 'by', 'scope', 'seed', 'out', 'reference', ...CONTEXT_SIZE_OPTIONS, 'chunks', 'calibrationChunks', 'onCalibrate', 'onProgress', 'onPoint', 'signal'] as const;

export async function pruneSweep(target: Model | string, options: PruneSweepOptions): Promise<PruneSweepResult> {
  const o = optionsObject(options, 'pruneSweep options');
  checkOptionNames(o, OPTIONS, 'pruneSweep()');
  if ((o.calibration === undefined) === (o.profile === undefined)) throw new TypeError('Expected exactly one of calibration or profile for pruneSweep()');
  if (o.profile !== undefined && !(o.profile instanceof RoutingProfile)) throw new TypeError(expected('a RoutingProfile', 'profile', o.profile));
  const calibration = o.calibration === undefined ? undefined : optionsObject(o.calibration, 'calibration');
  if (calibration) checkOptionNames(calibration, INPUT_OPTIONS, 'pruneSweep() calibration');
  if (!Array.isArray(o.ratios) || o.ratios.length === 0) throw new TypeError(expected('a non-empty array of ratios', 'ratios', o.ratios));
  const ratios = (o.ratios as unknown[]).map((r, i) => {
    const x = numberInRange(r, `ratios[${i}]`, 0, 1);
    if (x >= 1) throw new RangeError(expected('a fraction of experts removed in [0, 1)', `ratios[${i}]`, r));
    return x;
  });
  const by = (o.by ?? ['reap', 'frequency', 'random']) as PruneCriterion[];
  if (!Array.isArray(by) || by.length === 0) throw new TypeError(expected('a non-empty array of criteria', 'by', o.by));
  by.forEach((c, i) => {
    if (!PRUNE_CRITERIA.includes(c)) throw new TypeError(expected(`one of ${PRUNE_CRITERIA.map((x) => `'${x}'`).join(', ')}`, `by[${i}]`, c));
  });
  const scope = (o.scope ?? 'per-layer') as PruneScope;
  const seed = o.seed === undefined ? 0 : integer(o.seed, 'seed', 0, 2 ** 32 - 1);
  const out = resolve(nonEmptyString(o.out, 'out'));
  const signal = optionalSignal(o.signal, 'signal');
  const onCalibrate = optionalFunction<NonNullable<PruneSweepOptions['onCalibrate']>>(o.onCalibrate, 'onCalibrate');
  const calibrationChunks = o.calibrationChunks === undefined ? undefined : integer(o.calibrationChunks, 'calibrationChunks', 1, 2 ** 31 - 1);
  const sizes = resolveContextOptions(o, 'pruneSweep');
  if (signal?.aborted) throw toAbortReason(signal);

  const model = typeof target === 'string' ? await loadModel(target, signal ? { signal } : {}) : target;
  if (!(model instanceof Model)) throw new TypeError(expected('a Model or a model path', 'pruneSweep() target', target));
  try {
    const info = model.info;
    if (info.expertCount === 0) throw new RangeError(`pruneSweep() needs a Mixture-of-Experts model; this ${info.architecture} model has no experts`);
    // every ratio checked against the model before any evaluation (pruneMask throws the RangeError)
    const N = info.expertCount;
    const maxUsed = Math.max(...info.moeLayers.map((l) => l.expertsUsed));
    for (const [i, r] of ratios.entries()) {
      if (N - expertsRemoved(r, N) < maxUsed) throw new RangeError(`ratios[${i}] = ${r} removes ${expertsRemoved(r, N)} of ${N} experts per layer, leaving fewer than the ${maxUsed} experts per token the model routes to`);
    }
    const tokens = await inputTokens(model, o, 'pruneSweep()');

    let profile = o.profile as RoutingProfile | undefined;
    const profilePath = `${out}.profile.json`;
    let calibrated = false;
    if (!profile) {
      const calib = await inputTokens(model, calibration!, 'pruneSweep() calibration');
      const fp = await modelFingerprint(model.path);
      const kept = existsSync(profilePath) ? await RoutingProfile.load(profilePath).catch(() => undefined) : undefined;
      const d = kept?.data;
      if (kept && d && kept.hasExpertStats && d.model.fingerprint === fp && d.text.fingerprint === tokensFingerprint(calib) && d.settings.contextSize === sizes.contextSize && (calibrationChunks === undefined || d.settings.chunks === calibrationChunks)) {
        profile = kept;
      } else {
        profile = await calibrate(model, {
          tokens: calib,
          experts: info.expertsUsed,
          ...contextOptionsOf(sizes),
          ...(calibrationChunks ? { chunks: calibrationChunks } : {}),
          ...(signal ? { signal } : {}),
          ...(onCalibrate ? { onProgress: (p) => onCalibrate({ chunksDone: p.chunksDone, chunksTotal: p.chunksTotal }) } : {}),
        });
        await profile.save(profilePath);
        calibrated = true;
      }
    }

    const points = by.flatMap((criterion) =>
      ratios.map((ratio) => {
        const mask = pruneMask(profile!, { ratio, by: criterion, scope, seed, model });
        const routing = pruneExperts(profile!, { ratio, by: criterion, scope, seed, model });
        return { ratio, by: criterion, routing, mask, label: resolveRouting(routing, info).label };
      }),
    );
    const sw = await sweep(model, {
      routings: points.map((p) => p.routing),
      tokens,
      out,
      ...contextOptionsOf(sizes),
      ...(o.chunks === undefined ? {} : { chunks: integer(o.chunks, 'chunks', 1, 2 ** 31 - 1) }),
      ...(o.reference === undefined ? {} : { reference: o.reference as string }),
      ...(signal ? { signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress as PruneSweepOptions['onProgress'] } : {}),
      ...(o.onPoint ? { onPoint: o.onPoint as PruneSweepOptions['onPoint'] } : {}),
    });
    const byLabel = new Map(sw.rows.map((r) => [r.routing, r]));
    const routed = profile.data.layers.length * N;
    const rows: PruneRow[] = points.map((p) => {
      const r = byLabel.get(p.label)!;
      const removed = p.mask.map((l) => l.removed.length);
      return {
        ratio: p.ratio,
        by: p.by,
        removedPerLayer: removed,
        keptFraction: (routed - removed.reduce((a, b) => a + b, 0)) / routed,
        maskExperts: p.routing.maskExperts,
        routing: r.routing,
        perplexity: r.perplexity,
        stderr: r.stderr,
        kldMean: r.kldMean,
        kldUnc: r.kldUnc,
        sameTop: r.sameTop,
        expertsPerToken: r.expertsPerToken,
        tokensPerSecond: r.tokensPerSecond,
        threads: r.threads,
      };
    });
    return { out, profile, profilePath: o.profile ? null : profilePath, calibrated, scope, rows, sweep: sw };
  } finally {
    if (typeof target === 'string') await model.dispose();
  }
}
