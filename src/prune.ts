/**
 * pruneExperts(): which experts to remove, ranked from a routing profile's per-expert statistics
 * (calibrate(), profile version 3), as a routing with `maskExperts`: the masked experts are removed for
 * that context exactly as if they were cut from the file (exportModel() writes that file).
 *
 * Criteria (an expert's score; the lowest go first):
 *  - 'reap':      REAP saliency, the mean over the calibration tokens routed to the expert of
 *                 g·‖y‖ (its mixing weight × the L2 norm of its output), as llm-compressor's
 *                 REAPPruningModifier (Lasby et al. 2025, "REAP the Experts");
 *  - 'frequency': calibration tokens routed to it (among the model's n);
 *  - 'weight':    its mean mixing weight over those tokens;
 *  - 'random':    a seeded random order (the baseline every criterion should beat).
 * Scope 'per-layer' removes the same count from every MoE layer; 'global' ranks every (layer, expert)
 * of the model together and removes the same total, never leaving a layer fewer experts than it
 * routes to per token (its counts then differ between layers: a runtime mask only, not a file).
 */
import { statSync } from 'node:fs';
import { basename } from 'node:path';

import { MoeEvalError } from './errors.js';
import type { Model } from './model.js';
import { RoutingProfile } from './profile.js';
import type { Routing } from './routing.js';
import { checkOptionNames, expected, integer, numberInRange, optionsObject } from './validate.js';

export const PRUNE_CRITERIA = ['reap', 'frequency', 'weight', 'random'] as const;
export type PruneCriterion = (typeof PRUNE_CRITERIA)[number];
export const PRUNE_SCOPES = ['per-layer', 'global'] as const;
export type PruneScope = (typeof PRUNE_SCOPES)[number];

export interface PruneOptions {
  /** Fraction of each MoE layer's experts removed, in [0, 1): ⌊ratio·N⌋ per layer (llm-compressor's rule). Give `ratio` or `keep`. */
  ratio?: number;
  /** Experts kept per MoE layer (the model's experts per token … N). Give `ratio` or `keep`. */
  keep?: number;
  /** Ranking criterion (default 'reap'). */
  by?: PruneCriterion;
  /** 'per-layer' (default) or 'global'. */
  scope?: PruneScope;
  /** Seed of the 'random' criterion (default 0). */
  seed?: number;
  /** The model the mask is for: the profile must have been measured on this file (its fingerprint). */
  model?: Model;
}

export interface PrunedRouting extends Routing {
  /** The removed experts per MoE layer, in the routing grammar (`0:3,5;1:2`), or 'none'. */
  maskExperts: string;
}

/** Per MoE layer of the profile, each expert's score under `by` (higher = more important). */
export function expertScores(profile: RoutingProfile, by: Exclude<PruneCriterion, 'random'>): { layer: number; scores: number[] }[] {
  return profile.data.layers.map((l) => {
    const scores = by === 'reap' ? l.reap : by === 'frequency' ? l.expertTokens : l.meanWeight;
    return { layer: l.layer, scores: [...(scores ?? [])] };
  });
}

/** Experts a ratio removes from a layer of N: ⌊ratio·N⌋ (llm-compressor's rule; 0.125 of 8 is 1). */
export function expertsRemoved(ratio: number, N: number): number {
  return Math.floor(ratio * N + 1e-9);
}

/** mulberry32: a small seeded generator, so a 'random' mask is the same on every run with the same seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fingerprintOf(path: string): string {
  const st = statSync(path);
  return `${basename(path)}:${st.size}:${Math.floor(st.mtimeMs)}`; // as fingerprint.ts modelFingerprint()
}

/** Experts removed from each MoE layer of the profile, ids sorted. */
export function pruneMask(profile: RoutingProfile, options: PruneOptions): { layer: number; removed: number[] }[] {
  if (!(profile instanceof RoutingProfile)) throw new TypeError(expected('a RoutingProfile (from calibrate() or RoutingProfile.load())', 'profile', profile));
  const o = optionsObject(options, 'pruneExperts options');
  checkOptionNames(o, ['ratio', 'keep', 'by', 'scope', 'seed', 'model'], 'pruneExperts()');
  const N = profile.expertCount;
  const d = profile.data;
  if ((o.ratio === undefined) === (o.keep === undefined)) throw new TypeError('Expected exactly one of ratio or keep for pruneExperts()');
  const by = (o.by ?? 'reap') as PruneCriterion;
  if (!PRUNE_CRITERIA.includes(by)) throw new TypeError(expected(`one of ${PRUNE_CRITERIA.map((c) => `'${c}'`).join(', ')}`, 'by', o.by));
  const scope = (o.scope ?? 'per-layer') as PruneScope;
  if (!PRUNE_SCOPES.includes(scope)) throw new TypeError(expected("'per-layer' or 'global'", 'scope', o.scope));
  const seed = o.seed === undefined ? 0 : integer(o.seed, 'seed', 0, 2 ** 32 - 1);
  let removeCount: number;
  if (o.ratio !== undefined) {
    const ratio = numberInRange(o.ratio, 'ratio', 0, 1);
    if (ratio >= 1) throw new RangeError(expected('a fraction of experts removed in [0, 1)', 'ratio', o.ratio));
    removeCount = expertsRemoved(ratio, N);
  } else {
    removeCount = N - integer(o.keep, 'keep', 1, N);
  }
  // every layer keeps at least the experts it routes to per token
  const model = o.model as Model | undefined;
  const usedBy = new Map<number, number>();
  for (const l of d.layers) usedBy.set(l.layer, model?.info.moeLayers.find((f) => f.layer === l.layer)?.expertsUsed ?? d.model.expertsUsed);
  const maxUsed = Math.max(...usedBy.values());
  if (N - removeCount < maxUsed) {
    const what = o.ratio !== undefined ? `ratio ${o.ratio as number} removes ${removeCount} of ${N} experts and` : `keep ${o.keep as number}`;
    throw new RangeError(`pruneExperts(): ${what} leaves ${N - removeCount} experts per layer, fewer than the ${maxUsed} experts per token the model routes to; remove fewer experts`);
  }
  if (model !== undefined) {
    if (model.info.expertCount !== N) {
      throw new MoeEvalError('ERR_PROFILE_MISMATCH', `The routing profile was measured on ${d.model.file} (${N} experts); this model (${basename(model.path)}) has ${model.info.expertCount}`);
    }
    const fp = fingerprintOf(model.path);
    if (fp !== d.model.fingerprint) {
      throw new MoeEvalError('ERR_PROFILE_MISMATCH', `The routing profile was measured on another model file (${d.model.fingerprint}); this model is ${fp}. Calibrate on this model.`);
    }
  }
  if (by !== 'random' && !profile.hasExpertStats) {
    throw new MoeEvalError('ERR_PROFILE_MISMATCH', `This routing profile (version ${d.version}) has no per-expert statistics to rank by '${by}'; calibrate again (profile version 3)`);
  }

  const rnd = random(seed);
  const layers = d.layers.map((l) => l.layer);
  const scores: { layer: number; scores: number[] }[] =
    by === 'random' ? layers.map((layer) => ({ layer, scores: Array.from({ length: N }, () => rnd()) })) : expertScores(profile, by);
  // ties: the higher expert id goes first (a stable, documented order)
  const order = (a: { s: number; e: number }, b: { s: number; e: number }) => a.s - b.s || b.e - a.e;
  const removed = new Map<number, number[]>(layers.map((l) => [l, []]));
  if (scope === 'per-layer') {
    for (const { layer, scores: s } of scores) {
      const ranked = s.map((x, e) => ({ s: x, e })).sort(order);
      removed.set(layer, ranked.slice(0, removeCount).map((x) => x.e));
    }
  } else {
    const all = scores.flatMap(({ layer, scores: s }) => s.map((x, e) => ({ s: x, e, layer }))).sort((a, b) => order(a, b) || b.layer - a.layer);
    let left = removeCount * layers.length;
    for (const x of all) {
      if (left === 0) break;
      const r = removed.get(x.layer)!;
      if (N - r.length <= usedBy.get(x.layer)!) continue;
      r.push(x.e);
      left--;
    }
  }
  return layers.map((layer) => ({ layer, removed: removed.get(layer)!.sort((a, b) => a - b) }));
}

/** The routing that removes the experts pruneMask() chooses: `{ maskExperts: '0:3,5;1:2' }` ('none' when nothing is removed). */
export function pruneExperts(profile: RoutingProfile, options: PruneOptions): PrunedRouting {
  const mask = pruneMask(profile, options).filter((l) => l.removed.length > 0);
  return { maskExperts: mask.length === 0 ? 'none' : mask.map((l) => `${l.layer}:${l.removed.join(',')}`).join(';') };
}
