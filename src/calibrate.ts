/**
 * calibrate(): one pass over calibration text that measures how this model routes (see profile.ts).
 * The context computes k experts per token but mixes only the model's top n with the model's own
 * weight rule (the hook's mixTop), so every layer sees the unmodified model's hidden states while the
 * outputs of experts n+1..k are observed too.
 */
import { basename } from 'node:path';

import { toAbortReason } from './errors.js';
import { type EvaluateProgress, INPUT_OPTIONS, type TextAndSizes, inputTokens } from './evaluate.js';
import { modelFingerprint, tokensFingerprint } from './fingerprint.js';
import type { Model } from './model.js';
import type { NativeLayerStats } from './native.js';
import { DEFAULT_MIN_EXPERT_TOKENS, type ProfileData, type ProfileLayer, RoutingProfile } from './profile.js';
import { CONTEXT_SIZE_OPTIONS, contextSizes, resolveContextOptions } from './context.js';
import { resolveRouting, toNativeRouting } from './routing.js';
import { checkOptionNames, integer, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface CalibrateOptions extends TextAndSizes {
  /** k: experts computed per token, the largest m the profile covers. Default: all N (at most 4·n). */
  experts?: number;
  /** Coverage threshold: experts routed fewer calibration tokens than this are listed in `coverage` (default 16). */
  minExpertTokens?: number;
  onProgress?: (p: EvaluateProgress) => void;
  signal?: AbortSignal;
}

export async function calibrate(model: Model, options: CalibrateOptions): Promise<RoutingProfile> {
  const o = optionsObject(options, 'calibrate options');
  checkOptionNames(o, [...INPUT_OPTIONS, 'experts', 'minExpertTokens', ...CONTEXT_SIZE_OPTIONS, 'chunks', 'onProgress', 'signal'], 'calibrate()');
  const info = model.info;
  if (info.expertCount === 0) throw new RangeError(`calibrate() needs a Mixture-of-Experts model; ${info.architecture} model has no experts`);
  const n = info.expertsUsed;
  const k = o.experts === undefined ? Math.min(info.expertCount, Math.max(n, 4 * n)) : integer(o.experts, 'experts', n, info.expertCount);
  const minTokens = o.minExpertTokens === undefined ? DEFAULT_MIN_EXPERT_TOKENS : integer(o.minExpertTokens, 'minExpertTokens', 0, 2 ** 31 - 1);
  const sizes = resolveContextOptions(o, 'calibrate');
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  const signal = optionalSignal(o.signal, 'signal');
  const onProgress = optionalFunction<(p: EvaluateProgress) => void>(o.onProgress, 'onProgress');
  if (signal?.aborted) throw toAbortReason(signal);
  const tokens = await inputTokens(model, o, 'calibrate()');

  // compute k, mix the model's own top n
  const routing = resolveRouting(k > n ? { experts: k } : {}, info);
  const ctx = await model.createContextWith(
    contextSizes(sizes),
    { collectRoutingStats: true, reserveExperts: k },
  );
  let raw;
  let stats: NativeLayerStats[];
  try {
    ({ raw, stats } = await ctx.runNative(signal, async (nativeCtx) => {
      nativeCtx.setRouting(toNativeRouting(routing, info).map((l, il) => ({ ...l, mixTop: info.moeLayers.find((f) => f.layer === il)?.expertsUsed ?? n })));
      const r = await nativeCtx.evaluate(tokens, { chunkSize: sizes.contextSize, ...(chunks ? { chunks } : {}) }, onProgress);
      return { raw: r, stats: nativeCtx.takeRoutingStats() };
    }));
  } finally {
    await ctx.dispose();
  }

  const layers: ProfileLayer[] = stats.map((s) => {
    const nL = info.moeLayers.find((f) => f.layer === s.layer)?.expertsUsed ?? n;
    const mean2 = s.norm2.map((x) => x / s.tokens);
    const per = (sums: number[]) => sums.map((x, j) => (s.selected[j]! > 0 ? x / s.selected[j]! : 0));
    return {
      layer: s.layer,
      tokens: s.tokens,
      priorByRank: s.probByRank.map((x) => x / s.tokens),
      selectionFrequency: s.selected.map((x) => x / s.tokens),
      entropy: info.gating === 'softmax-over-chosen' ? null : s.entropy / s.tokens,
      correlation: s.pairs > 0 && s.self > 0 ? s.dot / s.pairs / (s.self / s.singles) : 0,
      meanNorm2: mean2,
      alpha: mean2.map((x) => Math.sqrt(mean2[nL - 1]! / x)),
      expertTokens: s.selected,
      meanWeight: per(s.weight),
      meanOutputNorm: per(s.norm),
      reap: per(s.reap),
    };
  });
  const pooled = Array.from({ length: k }, (_, m) => layers.reduce((a, l) => a + (l.meanNorm2[m] ?? 0), 0));
  const data: ProfileData = {
    format: 'moe-eval-routing-profile',
    version: 3,
    model: { file: basename(model.path), fingerprint: await modelFingerprint(model.path), architecture: info.architecture, expertCount: info.expertCount, expertsUsed: n, renormalized: info.renormalized, gating: info.gating },
    text: { fingerprint: tokensFingerprint(tokens), scoredTokens: raw.count },
    settings: { contextSize: sizes.contextSize, chunks: raw.chunkCount, computedExperts: k },
    perplexity: raw.perplexity,
    layers,
    global: {
      alpha: pooled.map((x) => Math.sqrt(pooled[n - 1]! / x)),
      priorByRank: Array.from({ length: info.expertCount }, (_, r) => layers.reduce((a, l) => a + l.priorByRank[r]!, 0) / Math.max(1, layers.length)),
      correlation: layers.reduce((a, l) => a + l.correlation, 0) / Math.max(1, layers.length),
    },
  };
  data.coverage = new RoutingProfile(data).coverage(minTokens);
  return new RoutingProfile(data);
}
