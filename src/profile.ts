/**
 * A routing profile: what calibrate() measured on real text, per MoE layer — the router's mean
 * probability by rank (the measured prior), expert selection frequencies, router entropy, the
 * correlation between chosen experts' outputs, and α_l(m) = sqrt(E‖o_n‖² / E‖o_m‖²) for every m up to
 * the experts computed. `expertScale: 'calibrated'` with `profile` uses α_l(m) per layer.
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
}

export interface ProfileData {
  format: 'moe-eval-routing-profile';
  version: 2;
  model: { file: string; fingerprint: string; architecture: string; expertCount: number; expertsUsed: number; renormalized: boolean; gating: string };
  text: { fingerprint: string; scoredTokens: number };
  settings: { contextSize: number; chunks: number; computedExperts: number };
  /** Perplexity of the unmodified model on the calibration text (measured in the same pass). */
  perplexity: number;
  layers: ProfileLayer[];
  /** Over all MoE layers: α(m) from the summed norms, the mean prior and correlation. */
  global: { alpha: number[]; priorByRank: number[]; correlation: number };
}

export class RoutingProfile {
  readonly data: ProfileData;

  constructor(data: ProfileData) {
    const d = data as unknown as Record<string, unknown> & { model?: Record<string, unknown> };
    if (!d || d.format !== 'moe-eval-routing-profile' || (d.version !== 1 && d.version !== 2) || !Array.isArray(d.layers) || !d.model) {
      throw new MoeEvalError('ERR_INVALID_ARG', 'Expected a moe-eval routing profile (format "moe-eval-routing-profile", version 1 or 2)');
    }
    // version 1 named N `experts`
    this.data = d.version === 1 ? ({ ...d, version: 2, model: { ...d.model, expertCount: d.model.experts, experts: undefined } } as unknown as ProfileData) : data;
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
