/**
 * Scale factors for the routed-expert output when a model trained with n experts per token runs with m.
 *
 * The seed (mergekit issue #294) keeps the expected squared norm of the mixed output constant, assuming
 * i.i.d. expert outputs y_i with E‖y_i‖² = r² and router probabilities p_1 ≥ … ≥ p_N over N experts:
 *   un-normalized weights (the seed):  E‖Σ_{i≤k} p_i y_i‖² ∝ Σ_{i≤k} p_i²          α = sqrt(S2(n) / S2(m))
 *   renormalized top-k (Mixtral):      w_i = p_i / Σ_{j≤k} p_j,  ∝ Σ p_i² / (Σ p_i)²  α = sqrt(f(n) / f(m))
 * Uniform prior: the seed gives sqrt(n/m); renormalization gives sqrt(m/n) — the opposite direction.
 * With an assumed correlation ρ between expert outputs, E‖Σ w_i y_i‖² ∝ (1-ρ) Σ w_i² + ρ (Σ w_i)².
 */
import { checkOptionNames, expected, integer, optionsObject } from './validate.js';

export type Prior = 'uniform' | { zipf: number } | readonly number[];

export interface ScaleFactorOptions {
  /** N: experts in the layer (ModelInfo.expertCount). */
  expertCount: number;
  /** n: experts per token the model was trained with (ModelInfo.expertsUsed). */
  trained: number;
  /** m: experts per token to run with (as routing.experts). */
  experts: number;
  prior?: Prior;
  /** Whether the router renormalizes the chosen top-k weights (Model.info tells). */
  renormalized: boolean;
  /** Assumed correlation between expert outputs, in [0, 1). Default 0 (the seed's i.i.d. assumption). */
  correlation?: number;
}

/** p_i ∝ i^-s over N experts, normalized (the seed's zipf_distribution). s = 0 is uniform. */
export function zipfPrior(experts: number, s: number): number[] {
  const w = Array.from({ length: experts }, (_, i) => 1 / Math.pow(i + 1, s));
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / total);
}

export function priorProbabilities(prior: Prior, experts: number): number[] {
  if (prior === 'uniform') return zipfPrior(experts, 0);
  if (Array.isArray(prior)) {
    if (prior.length !== experts) throw new RangeError(`Expected a prior of length ${experts} (one probability per rank) but received length ${prior.length}`);
    if (prior.some((p) => !(p >= 0) || !Number.isFinite(p))) throw new RangeError('Expected prior probabilities to be finite and >= 0');
    return [...prior].sort((a, b) => b - a);
  }
  const s = (prior as { zipf: number }).zipf;
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) throw new RangeError(`Expected a Zipf skew s >= 0 but received ${String(s)}`);
  return zipfPrior(experts, s);
}

/** Relative E‖mixed output‖² with the top-k experts (up to the constant r²). */
export function expectedNormSquared(p: readonly number[], k: number, renormalized: boolean, correlation = 0): number {
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < k; i++) {
    s1 += p[i]!;
    s2 += p[i]! * p[i]!;
  }
  if (renormalized) {
    if (s1 === 0) return 0;
    return (1 - correlation) * (s2 / (s1 * s1)) + correlation;
  }
  return (1 - correlation) * s2 + correlation * s1 * s1;
}

const SCALE_FACTOR_OPTIONS = ['expertCount', 'trained', 'experts', 'prior', 'renormalized', 'correlation'] as const;

export function scaleFactor(options: ScaleFactorOptions): number {
  const o = optionsObject(options, 'scaleFactor options');
  if ('used' in o) throw new TypeError("scaleFactor(): 'used' is now called 'experts' (experts per token, as in a routing); N is 'expertCount'");
  checkOptionNames(o, SCALE_FACTOR_OPTIONS, 'scaleFactor()');
  const expertCount = integer(o.expertCount, 'expertCount', 1, 1 << 16);
  const trained = integer(o.trained, 'trained', 1, expertCount);
  const experts = integer(o.experts, 'experts', 1, expertCount);
  if (typeof o.renormalized !== 'boolean') throw new TypeError(expected('a boolean (ModelInfo.renormalized)', 'renormalized', o.renormalized));
  const rho = o.correlation ?? 0;
  if (typeof rho !== 'number' || !(rho >= 0 && rho < 1)) throw new RangeError(expected('a number in [0, 1)', 'correlation', rho));
  const p = priorProbabilities((o.prior as Prior | undefined) ?? 'uniform', expertCount);
  const a = expectedNormSquared(p, trained, o.renormalized, rho);
  const b = expectedNormSquared(p, experts, o.renormalized, rho);
  return Math.sqrt(a / b);
}

/** A named rule as used in routing.expertScale and on the CLI. */
export type ScaleRuleName = 'none' | 'seed-uniform' | `seed-zipf:${number}` | 'uniform' | `zipf:${number}` | 'calibrated';

export interface ParsedScaleRule {
  name: string;
  kind: 'none' | 'closed-form' | 'calibrated';
  prior?: Prior;
  renormalized?: boolean | 'model';
}

/**
 * 'seed-uniform' / 'seed-zipf:S' are the seed's literal formula (un-normalized weights);
 * 'uniform' / 'zipf:S' use the model's own weight rule (renormalized or not, from Model.info);
 * 'calibrated' takes per-layer factors from a routing profile.
 */
export function parseScaleRule(name: string): ParsedScaleRule | undefined {
  if (name === 'none') return { name, kind: 'none' };
  if (name === 'calibrated') return { name, kind: 'calibrated' };
  if (name === 'seed-uniform' || name === 'seed') return { name, kind: 'closed-form', prior: 'uniform', renormalized: false };
  if (name === 'uniform') return { name, kind: 'closed-form', prior: 'uniform', renormalized: 'model' };
  const m = /^(seed-)?zipf:([0-9]*\.?[0-9]+)$/.exec(name);
  if (m) return { name, kind: 'closed-form', prior: { zipf: Number(m[2]) }, renormalized: m[1] ? false : 'model' };
  return undefined;
}

export const SCALE_RULE_NAMES = ['none', 'seed-uniform', 'seed-zipf:S', 'uniform', 'zipf:S', 'calibrated'] as const;
