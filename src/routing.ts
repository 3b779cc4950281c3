/**
 * The routing spec a context evaluates with: its options, validation, per-layer expansion and named
 * scale rules (the text grammar itself is src/routing-grammar.ts). Nothing here touches native code;
 * src/context.ts hands the resolved per-layer values to the addon.
 *
 * One grammar everywhere. Every option takes its typed form (a number, a per-layer array) or the same
 * text the CLI flag of that name takes (README, "Routing grammar"):
 *   experts        "3" | "3,3,2,2" (one per layer) | "0-11:2;12-23:1" (named layers; others keep the default)
 *   expertScale    a number, a per-layer list or layer spec as above, or a rule: none, seed-uniform,
 *                  seed-zipf:S, uniform, zipf:S, calibrated
 *   gateScale      a number, a per-layer list or layer spec
 *   maskExperts    "3,5" (those experts in every MoE layer) | "0:3,5;1:2" (per layer) | "none"
 *   minExperts, minWeightRatio   -ser Kmin,t
 *   topP           a probability in (0, 1]
 * The label of a resolved routing is written in the same grammar (`experts=3 expert-scale=uniform`),
 * so a label read off a table can be typed back as flags.
 */
import type { ModelInfo } from './model-info.js';
import type { NativeLayerRouting } from './native.js';
import { formatMask, formatNumber, formatPerLayer, labelPart, parseMask, perLayer } from './routing-grammar.js';
import { parseScaleRule, scaleFactor } from './scale.js';
import { checkOptionNames, describe, expected } from './validate.js';
import { RoutingProfile } from './profile.js';

export interface Routing {
  /** Experts used per token: 1…N, one per layer, or the text grammar ("0-11:2;12-23:1"). Default: the model's own count. */
  experts?: number | readonly number[] | string;
  /**
   * Multiplies the mixed output of the routed experts (exactly what scaling ffn_down_exps and its bias
   * does). A number, one per layer, a layer spec, or a rule name: 'none', 'seed-uniform', 'seed-zipf:S',
   * 'uniform', 'zipf:S', 'calibrated' (needs `profile`). Shared experts are not routed and never scaled.
   */
  expertScale?: number | readonly number[] | string;
  /** Multiplies the router logits before the gating function (inverse temperature). Number, per layer, or layer spec. */
  gateScale?: number | readonly number[] | string;
  /** -ser t: drop a chosen expert whose router weight is below t × the first chosen one's. In (0, 1]. */
  minWeightRatio?: number;
  /** -ser Kmin: experts always kept when minWeightRatio is set (default 1); below the experts per token. */
  minExperts?: number;
  /**
   * Top-p routing: per token, the fewest of the ranked experts whose router probabilities sum to at
   * least p (at most `experts`); weights then follow the model's own rule. In (0, 1].
   */
  topP?: number;
  /**
   * Experts that do not exist for this context, as if removed from the file: ids for every MoE layer,
   * one list per layer, or the text grammar ("3,5" or "0:3,5;1:2"). Shared experts are never masked.
   */
  maskExperts?: readonly number[] | readonly (readonly number[])[] | string;
  /** A routing profile from calibrate(), for expertScale: 'calibrated'. */
  profile?: RoutingProfile;
}

export const ROUTING_OPTION_NAMES = ['experts', 'expertScale', 'gateScale', 'minWeightRatio', 'minExperts', 'topP', 'maskExperts', 'profile'] as const;

/** A routing with every value per layer, as evaluated. */
export interface ResolvedRouting {
  experts: number[];
  expertScale: number[];
  gateScale: number[];
  minWeightRatio: number | null;
  minExperts: number | null;
  topP: number | null;
  /** Per layer, the masked experts' ids in ascending order ([] where none). */
  maskExperts: number[][];
  /** The expertScale rule's name when one was given. */
  expertScaleRule: string | null;
  /** True when nothing differs from the model's own routing. */
  isDefault: boolean;
  /** The routing in the grammar of the CLI flags, e.g. "experts=3 expert-scale=uniform"; "default" when nothing changes. */
  label: string;
}

function scaleValue(v: unknown, name: string): number {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new TypeError(expected('a finite number > 0', name, v));
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(expected('a finite number > 0', name, v));
  return v;
}

export function validateRoutingShape(routing: unknown, where = 'routing'): Routing {
  if (routing === undefined) return {};
  if (routing === null || typeof routing !== 'object' || Array.isArray(routing)) throw new TypeError(expected('a routing object', where, routing));
  checkOptionNames(routing, ROUTING_OPTION_NAMES, where);
  return routing as Routing;
}

const DEFAULT_LABEL = 'default';

/** Validates `routing` against the model and expands it to one value per layer. */
export function resolveRouting(routingIn: Routing | undefined, info: ModelInfo): ResolvedRouting {
  const routing = validateRoutingShape(routingIn);
  const layers = info.layers;
  const N = info.expertCount;
  const n = info.expertsUsed;
  const given = ROUTING_OPTION_NAMES.filter((k) => routing[k] !== undefined);
  if (N === 0) {
    if (given.length > 0) {
      throw new RangeError(`Routing options (${given.map((k) => `routing.${k}`).join(', ')}) need a Mixture-of-Experts model, but this ${info.architecture} model has no experts`);
    }
    return { experts: [], expertScale: [], gateScale: [], minWeightRatio: null, minExperts: null, topP: null, maskExperts: [], expertScaleRule: null, isDefault: true, label: DEFAULT_LABEL };
  }
  const defaultExperts = (il: number) => info.moeLayers.find((l) => l.layer === il)?.expertsUsed ?? n;

  const maskExperts = routing.maskExperts === undefined ? new Array<number[]>(layers).fill([]) : parseMask(routing.maskExperts, info);
  const checkExperts = (v: unknown, name: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(expected(`an integer in [1, ${N}]`, name, v));
    if (v < 1 || v > N) throw new RangeError(expected(`an integer in [1, ${N}] (the model has ${N} experts)`, name, v));
    return v;
  };
  const experts =
    routing.experts === undefined
      ? Array.from({ length: layers }, (_, il) => defaultExperts(il))
      : perLayer(routing.experts, 'routing.experts', info, NaN, checkExperts).map((v, il) => (Number.isNaN(v) ? defaultExperts(il) : v));
  for (const f of info.moeLayers) {
    const left = N - maskExperts[f.layer]!.length;
    if (experts[f.layer]! > left) {
      throw new RangeError(
        `routing.maskExperts leaves ${left} experts in layer ${f.layer}, fewer than the ${experts[f.layer]} per token routing.experts asks for; mask fewer experts or use fewer per token`,
      );
    }
  }
  const gateScale = routing.gateScale === undefined ? new Array<number>(layers).fill(1) : perLayer(routing.gateScale, 'routing.gateScale', info, 1, scaleValue);

  let expertScale: number[];
  let rule: string | null = null;
  const es = routing.expertScale;
  const parsed = typeof es === 'string' ? parseScaleRule(es.trim()) : undefined;
  if (routing.profile !== undefined && !(parsed?.kind === 'calibrated')) {
    throw new TypeError("routing.profile is only used with routing.expertScale 'calibrated'; remove it or set the scale rule");
  }
  if (es === undefined) {
    expertScale = new Array<number>(layers).fill(1);
  } else if (parsed) {
    rule = parsed.name;
    if (parsed.kind === 'none') {
      expertScale = new Array<number>(layers).fill(1);
    } else if (parsed.kind === 'calibrated') {
      if (!(routing.profile instanceof RoutingProfile)) {
        throw new TypeError("routing.expertScale 'calibrated' needs routing.profile (a routing profile measured by calibrate)");
      }
      if (routing.profile.expertCount !== N) {
        throw new RangeError(`The routing profile in routing.profile was measured on a model with ${routing.profile.expertCount} experts; this model has ${N}`);
      }
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
    if (typeof es === 'string' && /^[a-z]/i.test(es.trim())) {
      throw new RangeError(expected("a number, a per-layer list or one of 'none', 'seed-uniform', 'seed-zipf:S', 'uniform', 'zipf:S', 'calibrated'", 'routing.expertScale', es));
    }
    expertScale = perLayer(es, 'routing.expertScale', info, 1, scaleValue);
  }

  let minWeightRatio: number | null = null;
  let minExperts: number | null = null;
  if (routing.minWeightRatio !== undefined) {
    const t = routing.minWeightRatio;
    if (typeof t !== 'number' || Number.isNaN(t)) throw new TypeError(expected('a number in (0, 1]', 'routing.minWeightRatio', t));
    if (!(t > 0 && t <= 1)) throw new RangeError(expected('a number in (0, 1]', 'routing.minWeightRatio', t));
    minWeightRatio = t;
    minExperts = routing.minExperts === undefined ? 1 : checkExperts(routing.minExperts, 'routing.minExperts');
    const fewest = Math.min(...info.moeLayers.map((f) => experts[f.layer]!));
    if (minExperts >= fewest) {
      throw new RangeError(
        `Expected routing.minExperts below the experts per token (${fewest}) but received number ${minExperts}: with ${fewest} experts per token, keeping ${minExperts} always drops nothing`,
      );
    }
  } else if (routing.minExperts !== undefined) {
    throw new TypeError(`routing.minExperts (${describe(routing.minExperts)}) only applies together with routing.minWeightRatio`);
  }

  let topP: number | null = null;
  if (routing.topP !== undefined) {
    const p = routing.topP;
    if (typeof p !== 'number' || Number.isNaN(p)) throw new TypeError(expected('a probability in (0, 1]', 'routing.topP', p));
    if (!(p > 0 && p <= 1)) throw new RangeError(expected('a probability in (0, 1]', 'routing.topP', p));
    topP = p;
  }

  checkGraphBudget(experts, addsRoutingOps(routing), info);

  const masked = maskExperts.some((m) => m.length > 0);
  const isDefault =
    info.moeLayers.every((f) => experts[f.layer] === f.expertsUsed) &&
    expertScale.every((s) => s === 1) &&
    gateScale.every((g) => g === 1) &&
    minWeightRatio === null &&
    topP === null &&
    !masked;
  const parts: string[] = [];
  if (!info.moeLayers.every((f) => experts[f.layer] === f.expertsUsed)) parts.push(labelPart('experts', formatPerLayer(experts, info)));
  if (rule && rule !== 'none') parts.push(labelPart('expertScale', rule));
  else if (!expertScale.every((s) => s === 1)) parts.push(labelPart('expertScale', formatPerLayer(expertScale, info)));
  if (!gateScale.every((g) => g === 1)) parts.push(labelPart('gateScale', formatPerLayer(gateScale, info)));
  if (minWeightRatio !== null) parts.push(labelPart('ser', `${minExperts},${formatNumber(minWeightRatio)}`));
  if (topP !== null) parts.push(labelPart('topP', formatNumber(topP)));
  if (masked) parts.push(labelPart('maskExperts', formatMask(maskExperts, info)));
  // a model loaded with metadata overrides routes differently from its file: the label says so
  const overrides = info.kvOverrides?.length ? ` (override-kv ${info.kvOverrides.join(' ')})` : '';
  return {
    experts,
    expertScale,
    gateScale,
    minWeightRatio,
    minExperts,
    topP,
    maskExperts,
    expertScaleRule: rule,
    isDefault,
    label: (parts.length ? parts.join(' ') : DEFAULT_LABEL) + overrides,
  };
}

/** Whether the routing adds graph ops per layer besides extra experts (scales, -ser, top-p, masks). */
function addsRoutingOps(routing: Routing): boolean {
  return (
    routing.minWeightRatio !== undefined ||
    routing.gateScale !== undefined ||
    routing.expertScale !== undefined ||
    routing.topP !== undefined ||
    routing.maskExperts !== undefined
  );
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
    info.moeLayers.reduce((a, l) => a + 2 * Math.max(0, k(l.layer) - l.expertsUsed) + (extraOps ? 32 : 0), 0);
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
    experts: e === (info.moeLayers.find((l) => l.layer === il)?.expertsUsed ?? info.expertsUsed) ? 0 : e,
    expertScale: r.expertScale[il]!,
    gateScale: r.gateScale[il]!,
    serMin: r.minWeightRatio === null ? 0 : r.minExperts!,
    serRatio: r.minWeightRatio ?? 0,
    topP: r.topP ?? 0,
    mask: r.maskExperts[il] ?? [],
  }));
}

export function maxExperts(r: ResolvedRouting): number {
  return r.experts.length ? Math.max(...r.experts) : 0;
}
