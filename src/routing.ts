/**
 * The routing spec a context evaluates with: validation, per-layer expansion and named scale rules.
 * Nothing here touches native code; src/context.ts hands the resolved per-layer values to the addon.
 */
import type { ModelInfo } from './model-info.js';
import type { NativeLayerRouting } from './native.js';
import { parseScaleRule, scaleFactor } from './scale.js';
import { checkOptionNames, describe, expected } from './validate.js';
import { RoutingProfile } from './profile.js';

export interface Routing {
  /** Experts used per token: 1…N, or one entry per layer. Default: the model's own count. */
  experts?: number | readonly number[];
  /**
   * Multiplies the mixed output of the routed experts (exactly what scaling ffn_down_exps and its bias
   * does). A number, one per layer, or a rule name: 'none', 'seed-uniform', 'seed-zipf:S', 'uniform',
   * 'zipf:S', 'calibrated' (needs `profile`). Shared experts are not routed and never scaled.
   */
  expertScale?: number | readonly number[] | string;
  /** Multiplies the router logits before the gating function (inverse temperature). Number or per layer. */
  gateScale?: number | readonly number[];
  /** -ser t: drop a chosen expert whose router weight is below t × the first chosen one's. In (0, 1]. */
  minWeightRatio?: number;
  /** -ser Kmin: experts always kept when minWeightRatio is set (default 1). */
  minExperts?: number;
  /** A routing profile from calibrate(), for expertScale: 'calibrated'. */
  profile?: RoutingProfile;
}

export const ROUTING_OPTION_NAMES = ['experts', 'expertScale', 'gateScale', 'minWeightRatio', 'minExperts', 'profile'] as const;

/** A routing with every value per layer, as evaluated. */
export interface ResolvedRouting {
  experts: number[];
  expertScale: number[];
  gateScale: number[];
  minWeightRatio: number | null;
  minExperts: number | null;
  /** The expertScale rule's name when one was given. */
  expertScaleRule: string | null;
  /** True when nothing differs from the model's own routing. */
  isDefault: boolean;
  /** Short human label, e.g. "experts=3 scale=uniform". */
  label: string;
}

function perLayer(value: number | readonly number[], name: string, layers: number, check: (v: unknown, n: string) => number): number[] {
  if (Array.isArray(value)) {
    if (value.length !== layers) throw new RangeError(expected(`an array of ${layers} values (one per layer)`, name, value));
    return value.map((v, i) => check(v, `${name}[${i}]`));
  }
  const v = check(value, name);
  return new Array<number>(layers).fill(v);
}

function scaleValue(v: unknown, name: string): number {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new TypeError(expected('a finite number > 0', name, v));
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(expected('a finite number > 0', name, v));
  return v;
}

function formatNumber(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4).replace(/0+$/, '');
}

function compact(values: number[]): string {
  return values.every((v) => v === values[0]) ? formatNumber(values[0]!) : `[${values.map(formatNumber).join(',')}]`;
}

export function validateRoutingShape(routing: unknown, where = 'routing'): Routing {
  if (routing === undefined) return {};
  if (routing === null || typeof routing !== 'object' || Array.isArray(routing)) throw new TypeError(expected('a routing object', where, routing));
  checkOptionNames(routing, ROUTING_OPTION_NAMES, where);
  return routing as Routing;
}

/** Validates `routing` against the model and expands it to one value per layer. */
export function resolveRouting(routingIn: Routing | undefined, info: ModelInfo): ResolvedRouting {
  const routing = validateRoutingShape(routingIn);
  const layers = info.layers;
  const N = info.expertCount;
  const n = info.expertsUsed;
  const given = ROUTING_OPTION_NAMES.filter((k) => k !== 'profile' && routing[k] !== undefined);
  if (N === 0) {
    if (given.length > 0) {
      throw new RangeError(`Routing options (${given.join(', ')}) need a Mixture-of-Experts model, but ${info.architecture} model has no experts`);
    }
    return { experts: [], expertScale: [], gateScale: [], minWeightRatio: null, minExperts: null, expertScaleRule: null, isDefault: true, label: 'default' };
  }

  const checkExperts = (v: unknown, name: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(expected(`an integer in [1, ${N}]`, name, v));
    if (v < 1 || v > N) throw new RangeError(expected(`an integer in [1, ${N}] (the model has ${N} experts)`, name, v));
    return v;
  };
  const experts = routing.experts === undefined ? new Array<number>(layers).fill(n) : perLayer(routing.experts, 'routing.experts', layers, checkExperts);
  const gateScale = routing.gateScale === undefined ? new Array<number>(layers).fill(1) : perLayer(routing.gateScale, 'routing.gateScale', layers, scaleValue);

  let expertScale: number[];
  let rule: string | null = null;
  if (routing.expertScale === undefined) {
    expertScale = new Array<number>(layers).fill(1);
  } else if (typeof routing.expertScale === 'string') {
    rule = routing.expertScale;
    const parsed = parseScaleRule(rule);
    if (!parsed) {
      throw new RangeError(expected("a number, a per-layer array or one of 'none', 'seed-uniform', 'seed-zipf:S', 'uniform', 'zipf:S', 'calibrated'", 'routing.expertScale', rule));
    }
    if (parsed.kind === 'none') {
      expertScale = new Array<number>(layers).fill(1);
    } else if (parsed.kind === 'calibrated') {
      if (!(routing.profile instanceof RoutingProfile)) throw new TypeError("routing.expertScale 'calibrated' needs routing.profile (a RoutingProfile from calibrate() or RoutingProfile.load())");
      if (routing.profile.expertCount !== N) throw new RangeError(`The routing profile was measured on a model with ${routing.profile.expertCount} experts; this model has ${N}`);
      expertScale = experts.map((m, il) => routing.profile!.scaleFor(il, m));
    } else {
      expertScale = experts.map((m, il) => {
        const fact = info.moeLayers.find((l) => l.layer === il);
        return scaleFactor({
          expertCount: N,
          trained: fact?.expertsUsed ?? n,
          experts: m,
          prior: parsed.prior!,
          renormalized: parsed.renormalized === 'model' ? (fact?.renormalized ?? info.renormalized) : false,
        });
      });
    }
  } else {
    expertScale = perLayer(routing.expertScale as number | readonly number[], 'routing.expertScale', layers, scaleValue);
  }

  if (info.architecture === 'llama4' && !expertScale.every((x) => x === 1)) {
    // llama4 multiplies the router weights into the experts' input, not their output: scaling the
    // weights there is not scaling ffn_down_exps, so the option would not mean what it says
    throw new RangeError('routing.expertScale is not supported for llama4, whose router weights scale the experts\' input');
  }

  let minWeightRatio: number | null = null;
  let minExperts: number | null = null;
  if (routing.minWeightRatio !== undefined) {
    const t = routing.minWeightRatio;
    if (typeof t !== 'number' || Number.isNaN(t)) throw new TypeError(expected('a number in (0, 1]', 'routing.minWeightRatio', t));
    if (!(t > 0 && t <= 1)) throw new RangeError(expected('a number in (0, 1]', 'routing.minWeightRatio', t));
    minWeightRatio = t;
    minExperts = routing.minExperts === undefined ? 1 : checkExperts(routing.minExperts, 'routing.minExperts');
  } else if (routing.minExperts !== undefined) {
    throw new TypeError(`routing.minExperts (${describe(routing.minExperts)}) only applies together with routing.minWeightRatio`);
  }

  checkGraphBudget(experts, addsRoutingOps(routing), info);

  const isDefault =
    experts.every((e) => e === n) && expertScale.every((s) => s === 1) && gateScale.every((g) => g === 1) && minWeightRatio === null;
  const parts: string[] = [];
  if (!experts.every((e) => e === n)) parts.push(`experts=${compact(experts)}`);
  if (rule && rule !== 'none') parts.push(`scale=${rule}`);
  else if (!expertScale.every((s) => s === 1)) parts.push(`scale=${compact(expertScale)}`);
  if (!gateScale.every((g) => g === 1)) parts.push(`gate=${compact(gateScale)}`);
  if (minWeightRatio !== null) parts.push(`ser=${minExperts},${formatNumber(minWeightRatio)}`);
  return { experts, expertScale, gateScale, minWeightRatio, minExperts, expertScaleRule: rule, isDefault, label: parts.length ? parts.join(' ') : 'default' };
}

/** Whether the routing adds graph ops per layer besides extra experts (scales, -ser). */
function addsRoutingOps(routing: Routing): boolean {
  return routing.minWeightRatio !== undefined || routing.gateScale !== undefined || routing.expertScale !== undefined;
}

/**
 * llama.cpp sizes its graph for the model's own routing and aborts the process when a graph outgrows
 * it. Each extra expert per token costs two nodes per MoE layer (a view and an add); the routing ops
 * a few more. Refuse what would not fit, with the largest count that does.
 */
function checkGraphBudget(experts: number[], extraOps: boolean, info: ModelInfo): void {
  const last = info.moeLayers.reduce((a, l) => (l.graphNodes > a.graphNodes ? l : a), info.moeLayers[0]!);
  if (!last || !last.graphSize) return;
  // every tensor the graph touches takes a slot in the scheduler's hash set of graphSize entries:
  // the nodes built so far, the weights (leaves), and the output head plus slack after the last layer
  const free = last.graphSize - last.graphNodes - info.tensors - 128;
  const need = (k: (il: number) => number) =>
    info.moeLayers.reduce((a, l) => a + 2 * Math.max(0, k(l.layer) - l.expertsUsed) + (extraOps ? 12 : 0), 0);
  if (need((il) => experts[il] ?? 0) <= free) return;
  let best = info.expertsUsed;
  while (best < info.expertCount && need(() => best + 1) <= free) best++;
  throw new RangeError(
    `routing.experts asks for more experts than llama.cpp's graph for this model can hold (${need((il) => experts[il] ?? 0)} extra nodes, ${free} free); at most ${best} experts per token in every layer`,
  );
}

/** What the addon receives: one entry per layer, or [] for the model's own routing (bit-identical). */
export function toNativeRouting(r: ResolvedRouting, info: ModelInfo): NativeLayerRouting[] {
  if (r.isDefault) return [];
  return r.experts.map((e, il) => ({
    experts: e === info.expertsUsed ? 0 : e,
    expertScale: r.expertScale[il]!,
    gateScale: r.gateScale[il]!,
    serMin: r.minWeightRatio === null ? 0 : r.minExperts!,
    serRatio: r.minWeightRatio ?? 0,
  }));
}

export function maxExperts(r: ResolvedRouting): number {
  return r.experts.length ? Math.max(...r.experts) : 0;
}
