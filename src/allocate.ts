/**
 * allocate(): a per-layer expert budget from a sensitivity scan. Each MoE layer l gets one experts
 * count k_l, chosen among the model's own count n_l (effect 0) and the experts counts the scan
 * measured in that layer (effect e_l(k) = KLD(only layer l at k) − KLD(default routing)); the schedule
 * minimizes the predicted KLD
 *
 *     KLD(k_1 … k_L) ≈ KLD(default) + Σ_l e_l(k_l)
 *
 * under a budget: the mean experts per token over the MoE layers (Σ k_l ≤ meanExperts · L), or the
 * active parameters per token (otherParams + Σ k_l · P_l ≤ activeParams, P_l the parameters of one
 * routed expert of layer l). The minimum is exact: a multiple-choice knapsack solved by dynamic
 * programming over the Pareto frontier of (cost, predicted KLD) after each layer — every state that a
 * cheaper state does not beat is kept, so no schedule is missed whatever the costs are.
 *
 * The additive model is first order: it is exact when the layers' effects on the output
 * distribution do not interact. docs/budgets.md measures how far off it is on the demo model.
 */
import type { ScanModelFacts, ScanResult } from './scan.js';
import { formatPerLayer } from './routing-grammar.js';
import { checkOptionNames, expected, optionsObject } from './validate.js';

export interface AllocateOptions {
  /** Mean experts per token over the MoE layers (e.g. 1.5 on a top-2 model). */
  meanExperts?: number;
  /** Active parameters per token: the non-expert parameters plus the experts used in every layer. */
  activeParams?: number;
}

export interface Allocation {
  /** The schedule as a routing: one experts count per layer (dense layers keep the model's count). */
  routing: { experts: number[] };
  /** The same schedule in the routing grammar (`--experts` text), e.g. '0:1;1-3:2'. */
  experts: string;
  /** Per MoE layer: its experts count and its predicted KLD effect. */
  layers: { layer: number; experts: number; effect: number }[];
  /** KLD(default) + Σ effects: the predicted mean KLD against the scan's reference. */
  predictedKld: number;
  /** Mean experts per token over the MoE layers. */
  meanExperts: number;
  /** otherParams + Σ k_l · P_l. */
  activeParams: number;
}

/** One layer's choices: experts count, its cost in budget units and its predicted effect. */
interface Choice {
  experts: number;
  cost: number;
  effect: number;
}

function isScan(v: unknown): v is Pick<ScanResult, 'facts' | 'changes' | 'kld' | 'base'> {
  const s = v as Partial<ScanResult> | null;
  return (
    s !== null &&
    typeof s === 'object' &&
    typeof s.facts === 'object' &&
    s.facts !== null &&
    Array.isArray(s.facts.moeLayers) &&
    Array.isArray(s.changes) &&
    Array.isArray(s.kld) &&
    s.kld.length === s.facts.moeLayers.length &&
    s.kld.every((row) => Array.isArray(row) && row.length === s.changes!.length && row.every((x) => typeof x === 'number' && Number.isFinite(x))) &&
    typeof s.base?.kldMean === 'number'
  );
}

/** The experts counts a scan measured: its changes that change only the experts count. */
function expertsChanges(changes: readonly string[]): { column: number; experts: number }[] {
  return changes.flatMap((c, column) => {
    const m = /^experts=(\d+)$/.exec(c);
    return m ? [{ column, experts: Number(m[1]) }] : [];
  });
}

/** The cheapest-first Pareto frontier of (cost, predicted KLD) over the layers' choices; exact. */
function solve(choices: Choice[][], capacity: number): { cost: number; effect: number; picks: number[] } | undefined {
  const eps = 1e-9 * Math.max(1, Math.abs(capacity));
  let states: { cost: number; effect: number; picks: number[] }[] = [{ cost: 0, effect: 0, picks: [] }];
  for (const layer of choices) {
    const next = states.flatMap((s) => layer.map((c) => ({ cost: s.cost + c.cost, effect: s.effect + c.effect, picks: [...s.picks, c.experts] }))).filter((s) => s.cost <= capacity + eps);
    next.sort((a, b) => a.cost - b.cost || a.effect - b.effect);
    states = [];
    for (const s of next) if (states.length === 0 || s.effect < states[states.length - 1]!.effect) states.push(s);
  }
  // the frontier's last state is the cheapest-in-KLD within the budget
  return states.length ? states[states.length - 1] : undefined;
}

export function allocate(scanResult: ScanResult | Pick<ScanResult, 'facts' | 'changes' | 'kld' | 'base'>, options: AllocateOptions): Allocation {
  if (!isScan(scanResult)) throw new TypeError(expected('a scan result (from scan() or readScan()) with one KLD per MoE layer and change', 'scanResult', scanResult));
  const o = optionsObject(options, 'allocate options');
  checkOptionNames(o, ['meanExperts', 'activeParams'], 'allocate()');
  if ((o.meanExperts === undefined) === (o.activeParams === undefined)) throw new TypeError('Expected exactly one of meanExperts or activeParams for allocate()');
  const facts: ScanModelFacts = scanResult.facts;
  const L = facts.moeLayers.length;
  const columns = expertsChanges(scanResult.changes);
  if (columns.length === 0) throw new RangeError(expected("a scan with experts changes (e.g. 'experts=1')", 'scanResult.changes', scanResult.changes));
  const byParams = o.activeParams !== undefined;
  const choices: Choice[][] = facts.moeLayers.map((_, i) => {
    const unit = byParams ? facts.expertParams[i]! : 1;
    const own: Choice = { experts: facts.expertsUsed[i]!, cost: facts.expertsUsed[i]! * unit, effect: 0 };
    const measured = columns.filter((c) => c.experts !== own.experts).map((c) => ({ experts: c.experts, cost: c.experts * unit, effect: scanResult.kld[i]![c.column]! - scanResult.base.kldMean }));
    return [own, ...measured].sort((a, b) => a.experts - b.experts);
  });
  const fewest = choices.reduce((s, l) => s + Math.min(...l.map((c) => c.cost)), 0);
  let capacity: number;
  if (byParams) {
    const p = o.activeParams;
    if (typeof p !== 'number' || Number.isNaN(p)) throw new TypeError(expected('a number of parameters', 'activeParams', p));
    const least = facts.otherParams + fewest;
    if (!(p >= least) || !Number.isFinite(p)) throw new RangeError(expected(`at least ${least} active parameters (the fewest experts the scan measured in every layer)`, 'activeParams', p));
    capacity = p - facts.otherParams;
  } else {
    const m = o.meanExperts;
    if (typeof m !== 'number' || Number.isNaN(m)) throw new TypeError(expected('a number of experts per token', 'meanExperts', m));
    const least = fewest / L;
    if (!(m >= least) || !Number.isFinite(m)) throw new RangeError(expected(`a mean of at least ${least} experts per token (the fewest the scan measured in every layer)`, 'meanExperts', m));
    capacity = m * L;
  }
  const best = solve(choices, capacity)!;
  const n = facts.expertsUsed[0] ?? 1;
  const experts = Array.from({ length: facts.layers }, () => n);
  facts.moeLayers.forEach((il, i) => (experts[il] = best.picks[i]!));
  const layers = facts.moeLayers.map((layer, i) => ({ layer, experts: best.picks[i]!, effect: choices[i]!.find((c) => c.experts === best.picks[i])!.effect }));
  return {
    routing: { experts },
    experts: formatPerLayer(experts, { moeLayers: facts.moeLayers.map((layer) => ({ layer })) as never }),
    layers,
    predictedKld: scanResult.base.kldMean + best.effect,
    meanExperts: best.picks.reduce((a, b) => a + b, 0) / L,
    activeParams: facts.otherParams + best.picks.reduce((s, k, i) => s + k * facts.expertParams[i]!, 0),
  };
}
