/**
 * A routing profile: what calibrate() measured on real text, per MoE layer — the router's mean
 * probability by rank (the measured prior), expert selection frequencies, router entropy, the
 * correlation between chosen experts' outputs, and α_l(m) = sqrt(E‖o_n‖² / E‖o_m‖²) for every m up to
 * the experts computed. `expertScale: 'calibrated'` with `profile` uses α_l(m) per layer.
 *
 * Version 3 adds, per layer and expert, what pruneExperts() ranks by (over the tokens for which the
 * expert is among the model's n): the tokens routed to it, its mean mixing weight g, the mean L2 norm
 * of its output ‖y‖ (the down projection's output, before weighting) and REAP's saliency, the mean of
 * g·‖y‖; and the experts that got fewer than `coverage.minTokens` tokens. Versions 1 and 2 still load
 * (without those fields).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import { MoeEvalError } from './errors.js';

export interface ProfileLayer {
  layer: number;
  tokens: number;
  /** Mean router probability (or score) of the r-th strongest expert, r = 1..N. */
  priorByRank: number[];
  /** Fraction of tokens for which each expert is among the model's n. */
  selectionFrequency: number[];
  /** Mean entropy of the router distribution (nats); null for softmax-over-chosen routers. */
  entropy: number | null;
  /** E[y_i·y_j] / E‖y_i‖² over pairs of chosen experts: the ρ of the scale formulas. */
  correlation: number;
  /** E‖o_m‖², m = 1..computed. */
  meanNorm2: number[];
  /** α(m) = sqrt(E‖o_n‖² / E‖o_m‖²), m = 1..computed. */
  alpha: number[];
  /** Version 3: per expert, the calibration tokens routed to it (among the model's n). */
  expertTokens?: number[];
  /** Version 3: per expert, mean mixing weight g over its tokens (the model's own weight rule over its top n); 0 without tokens. */
  meanWeight?: number[];
  /** Version 3: per expert, mean ‖y‖ over its tokens (L2 norm of its output before weighting); 0 without tokens. */
  meanOutputNorm?: number[];
  /** Version 3: per expert, REAP saliency: mean of g·‖y‖ over its tokens; 0 without tokens. */
  reap?: number[];
}

/** Experts whose statistics rest on fewer than `minTokens` calibration tokens. */
export interface ProfileCoverage {
  minTokens: number;
  below: { layer: number; expert: number; tokens: number }[];
}

export interface ProfileData {
  format: 'moe-eval-routing-profile';
  version: 2 | 3;
  model: { file: string; fingerprint: string; architecture: string; expertCount: number; expertsUsed: number; renormalized: boolean; gating: string };
  text: { fingerprint: string; scoredTokens: number };
  settings: { contextSize: number; chunks: number; computedExperts: number };
  /** Perplexity of the unmodified model on the calibration text (measured in the same pass). */
  perplexity: number;
  layers: ProfileLayer[];
  /** Over all MoE layers: α(m) from the summed norms, the mean prior and correlation. */
  global: { alpha: number[]; priorByRank: number[]; correlation: number };
  /** Version 3: the experts with too few calibration tokens for their statistics to mean much. */
  coverage?: ProfileCoverage;
}

/** The default coverage threshold: an expert routed fewer calibration tokens than this is listed. */
export const DEFAULT_MIN_EXPERT_TOKENS = 16;

export class RoutingProfile {
  readonly data: ProfileData;

  constructor(data: ProfileData) {
    const d = data as unknown as Record<string, unknown> & { model?: Record<string, unknown> };
    if (!d || d.format !== 'moe-eval-routing-profile' || (d.version !== 1 && d.version !== 2 && d.version !== 3) || !Array.isArray(d.layers) || !d.model) {
      throw new MoeEvalError('ERR_INVALID_ARG', 'Expected a moe-eval routing profile (format "moe-eval-routing-profile", version 1, 2 or 3)');
    }
    // version 1 named N `experts`; versions 1 and 2 lack the per-expert statistics (hasExpertStats)
    this.data = d.version === 1 ? ({ ...d, version: 2, model: { ...d.model, expertCount: d.model.experts, experts: undefined } } as unknown as ProfileData) : data;
  }

  /** Whether the profile has the per-expert statistics pruneExperts() ranks by (version 3). */
  get hasExpertStats(): boolean {
    return this.data.layers.length > 0 && this.data.layers.every((l) => Array.isArray(l.expertTokens) && Array.isArray(l.reap));
  }

  /** The experts routed fewer than `minTokens` calibration tokens (default: the threshold calibrate() used). */
  coverage(minTokens?: number): ProfileCoverage {
    const min = minTokens ?? this.data.coverage?.minTokens ?? DEFAULT_MIN_EXPERT_TOKENS;
    const below: ProfileCoverage['below'] = [];
    for (const l of this.data.layers) (l.expertTokens ?? []).forEach((t, expert) => t < min && below.push({ layer: l.layer, expert, tokens: t }));
    return { minTokens: min, below };
  }

  static async load(path: string): Promise<RoutingProfile> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new MoeEvalError('ERR_FILE', `Cannot read routing profile ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    try {
      return new RoutingProfile(JSON.parse(text) as ProfileData);
    } catch (e) {
      if (e instanceof MoeEvalError) throw e;
      throw new MoeEvalError('ERR_INVALID_ARG', `${path} is not JSON: ${(e as Error).message}`);
    }
  }

  /** Writes the profile as JSON (atomically; the folder is created if missing). */
  async save(path: string): Promise<void> {
    await mkdir(dirname(resolve(path)), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(this.data, null, 2) + '\n');
    await rename(tmp, path);
  }

  /** N of the model it was measured on. */
  get expertCount(): number {
    return this.data.model.expertCount;
  }

  get computedExperts(): number {
    return this.data.settings.computedExperts;
  }

  /** The measured α for `layer` at `experts` experts per token (1 for a layer without experts). */
  scaleFor(layer: number, experts: number): number {
    const l = this.data.layers.find((x) => x.layer === layer);
    if (!l) return 1;
    if (!Number.isInteger(experts) || experts < 1 || experts > l.alpha.length) {
      throw new RangeError(`The routing profile measured 1 to ${l.alpha.length} experts per token; received ${experts}. Calibrate with more experts.`);
    }
    return l.alpha[experts - 1]!;
  }

  /** The measured global α (all layers' norms pooled). */
  globalScale(experts: number): number {
    const a = this.data.global.alpha;
    if (experts < 1 || experts > a.length) throw new RangeError(`The routing profile measured 1 to ${a.length} experts per token; received ${experts}`);
    return a[experts - 1]!;
  }

  toJSON(): ProfileData {
    return this.data;
  }
}
