/**
 * The routing spec a context evaluates with: its grammar, validation, per-layer expansion and named
 * scale rules. Nothing here touches native code; src/context.ts hands the resolved per-layer values to
 * the addon.
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

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function toNumber(text: string, name: string, what: string): number {
  const t = text.trim();
  if (!NUMBER.test(t)) throw new TypeError(expected(what, name, text));
  return Number(t);
}

/** "i" or "i-j" → the layer indices, checked against the model. */
function layerRange(text: string, name: string, info: ModelInfo): number[] {
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
  if (!m) throw new TypeError(expected('a layer i or a range i-j before ":"', name, text));
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a || b >= info.layers) throw new RangeError(expected(`layers in [0, ${info.layers - 1}]`, name, text));
  const out: number[] = [];
  for (let il = a; il <= b; il++) {
    if (info.expertCount > 0 && !info.moeLayers.some((l) => l.layer === il)) {
      throw new RangeError(`Layer ${il} named in ${name} has no experts (the MoE layers are ${info.moeLayers.map((l) => l.layer).join(',')})`);
    }
    out.push(il);
  }
  return out;
}

/**
 * "LAYERS:VALUE;LAYERS:VALUE" → one entry per layer, `undefined` where no layer spec names it.
 * A layer named twice is an error.
 */
function layerSpec<T>(text: string, name: string, info: ModelInfo, value: (v: string, at: string) => T): (T | undefined)[] {
  const out = new Array<T | undefined>(info.layers).fill(undefined);
  for (const part of text.split(';')) {
    if (part.trim() === '') continue;
    const colon = part.indexOf(':');
    if (colon < 0) throw new TypeError(expected('LAYERS:VALUE pairs separated by ";" (e.g. 0-11:2;12-23:1)', name, text));
    for (const il of layerRange(part.slice(0, colon), name, info)) {
      if (out[il] !== undefined) throw new RangeError(`Layer ${il} is named twice in ${name} (${JSON.stringify(text)})`);
      out[il] = value(part.slice(colon + 1), `${name} (layer ${il})`);
    }
  }
  return out;
}

/**
 * A per-layer numeric option in any of its forms → one value per layer (`fallback` where a layer spec
 * leaves a layer out).
 */
function perLayer(value: unknown, name: string, info: ModelInfo, fallback: number, check: (v: unknown, n: string) => number): number[] {
  const layers = info.layers;
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.includes(':')) return layerSpec(text, name, info, (v, at) => check(toNumber(v, at, 'a number'), at)).map((v) => v ?? fallback);
    if (text.includes(',')) return perLayer(text.split(',').map((v, i) => toNumber(v, `${name}[${i}]`, 'a number')), name, info, fallback, check);
    return new Array<number>(layers).fill(check(toNumber(text, name, 'a number, a per-layer list a,b,c or a layer spec 0-3:a;4-7:b'), name));
  }
  if (Array.isArray(value)) {
    if (value.length !== layers) throw new RangeError(expected(`${layers} values (one per layer)`, name, value));
    return value.map((v, i) => check(v, `${name}[${i}]`));
  }
  return new Array<number>(layers).fill(check(value, name));
}

function scaleValue(v: unknown, name: string): number {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new TypeError(expected('a finite number > 0', name, v));
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(expected('a finite number > 0', name, v));
  return v;
}

function formatNumber(x: number): string {
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(4)));
}

/** Per-layer values in the grammar: one value, or runs of layers "0-11:2;12-23:1" (dense layers left out). */
export function formatPerLayer(values: readonly number[], info: Pick<ModelInfo, 'moeLayers'>, format: (x: number) => string = formatNumber): string {
  const moe = info.moeLayers.length ? info.moeLayers.map((l) => l.layer) : values.map((_, i) => i);
  const at = moe.map((il) => values[il]!);
  if (at.every((v) => v === at[0])) return format(at[0]!);
  const runs: string[] = [];
  let start = 0;
  for (let i = 1; i <= moe.length; i++) {
    if (i === moe.length || at[i] !== at[start] || moe[i]! !== moe[i - 1]! + 1) {
      const a = moe[start]!;
      const b = moe[i - 1]!;
      runs.push(`${a === b ? a : `${a}-${b}`}:${format(at[start]!)}`);
      start = i;
    }
  }
  return runs.join(';');
}

function formatMask(mask: readonly (readonly number[])[], info: ModelInfo): string {
  const moe = info.moeLayers.map((l) => l.layer);
  const first = mask[moe[0]!] ?? [];
  if (moe.every((il) => sameIds(mask[il] ?? [], first))) return first.join(',');
  return moe.filter((il) => (mask[il] ?? []).length).map((il) => `${il}:${mask[il]!.join(',')}`).join(';');
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function resolveMask(value: unknown, info: ModelInfo): number[][] {
  const N = info.expertCount;
  const name = 'routing.maskExperts';
  const ids = (list: unknown, at: string): number[] => {
    if (!Array.isArray(list)) throw new TypeError(expected('an array of expert ids', at, list));
    const out = list.map((v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(expected(`an expert id in [0, ${N - 1}]`, `${at}[${i}]`, v));
      if (v < 0 || v >= N) throw new RangeError(expected(`an expert id in [0, ${N - 1}] (the model has ${N} experts)`, `${at}[${i}]`, v));
      return v;
    });
    const sorted = [...new Set(out)].sort((a, b) => a - b);
    if (sorted.length !== out.length) throw new RangeError(`${at} names an expert twice (${out.join(',')})`);
    return sorted;
  };
  const idText = (t: string, at: string): number[] => ids(t.split(',').map((x, i) => (x.trim() === '' ? NaN : toNumber(x, `${at}[${i}]`, 'an expert id'))), at);
  const moe = new Set(info.moeLayers.map((l) => l.layer));
  const everyLayer = (list: number[]) => Array.from({ length: info.layers }, (_, il) => (moe.has(il) ? list : []));
  if (typeof value === 'string') {
    const t = value.trim();
    if (t === '' || t === 'none') return everyLayer([]);
    if (t.includes(':')) return layerSpec(t, name, info, (v, at) => idText(v, at)).map((v) => v ?? []);
    return everyLayer(idText(t, name));
  }
  if (!Array.isArray(value)) throw new TypeError(expected('expert ids, one list per layer, or text such as "3,5" or "0:3,5;1:2"', name, value));
  if (value.length > 0 && value.every((v) => Array.isArray(v))) {
    if (value.length !== info.layers) throw new RangeError(expected(`${info.layers} lists (one per layer)`, name, value));
    return value.map((l, il) => {
      const r = ids(l, `${name}[${il}]`);
      if (r.length && !moe.has(il)) throw new RangeError(`Layer ${il} named in ${name} has no experts`);
      return r;
    });
  }
  return everyLayer(ids(value, name));
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

  const maskExperts = routing.maskExperts === undefined ? new Array<number[]>(layers).fill([]) : resolveMask(routing.maskExperts, info);
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

  if (info.architecture === 'llama4' && !expertScale.every((x) => x === 1)) {
    // llama4 multiplies the router weights into the experts' input, not their output: scaling the
    // weights there is not scaling ffn_down_exps, so the option would not mean what it says
    throw new RangeError("routing.expertScale is not supported for llama4, whose router weights scale the experts' input");
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
  if (!info.moeLayers.every((f) => experts[f.layer] === f.expertsUsed)) parts.push(`experts=${formatPerLayer(experts, info)}`);
  if (rule && rule !== 'none') parts.push(`expert-scale=${rule}`);
  else if (!expertScale.every((s) => s === 1)) parts.push(`expert-scale=${formatPerLayer(expertScale, info)}`);
  if (!gateScale.every((g) => g === 1)) parts.push(`gate-scale=${formatPerLayer(gateScale, info)}`);
  if (minWeightRatio !== null) parts.push(`ser=${minExperts},${formatNumber(minWeightRatio)}`);
  if (topP !== null) parts.push(`top-p=${formatNumber(topP)}`);
  if (masked) parts.push(`mask-experts=${formatMask(maskExperts, info)}`);
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
    info.moeLayers.reduce((a, l) => a + 2 * Math.max(0, k(l.layer) - l.expertsUsed) + (extraOps ? 16 : 0), 0);
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
