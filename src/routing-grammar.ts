/**
 * The text grammar of routing options (README, "Routing grammar"): parsing a value given in any of its
 * forms (a number, a per-layer list, the CLI flag's text) into one value per layer, and writing per-layer
 * values back as text for labels; and the labels themselves ("experts=3 expert-scale=uniform": each part
 * an option's flag name, "=", its value), read by parseLabel() wherever a routing or a change is given
 * in that form (scan's changes). Range checks that need the option's meaning live with the option in
 * src/routing.ts; this file knows layers, lists, expert ids and labels.
 */
import type { ModelInfo } from './model-info.js';
import { expected } from './validate.js';

export const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function toNumber(text: string, name: string, what: string): number {
  const t = text.trim();
  if (!NUMBER.test(t)) throw new TypeError(expected(what, name, text));
  return Number(t);
}

/** A number given as a number or as its text (NaN refused). */
export function numberValue(value: unknown, name: string, what = 'a number'): number {
  if (typeof value === 'number' && !Number.isNaN(value)) return value;
  if (typeof value === 'string' && NUMBER.test(value.trim())) return Number(value.trim());
  throw new TypeError(expected(what, name, value));
}

/** "3,5" → the expert ids as numbers, in the order given (checked against the model by parseMask()). */
export function expertIds(text: string, name: string, what = 'an expert id'): number[] {
  return text.split(',').map((x, i) => toNumber(x, `${name}[${i}]`, what));
}

/** The flag name of each routing option: its key in a label (`expert-scale=uniform`) and on the CLI (`--expert-scale`). */
export const ROUTING_FLAGS = { experts: 'experts', expertScale: 'expert-scale', gateScale: 'gate-scale', ser: 'ser', topP: 'top-p', maskExperts: 'mask-experts' } as const;
export type RoutingFlagOption = keyof typeof ROUTING_FLAGS;

/** One part of a label: the option's flag name, "=", the value's text. */
export function labelPart(option: RoutingFlagOption, value: string): string {
  return `${ROUTING_FLAGS[option]}=${value}`;
}

/**
 * Text in the label form ("experts=3 expert-scale=1.2"; parts separated by spaces, or by "+" before
 * the next flag name: "experts=3+expert-scale=1.2") → its parts in order, each the option it names
 * and the value's text. Only the `allowed` options are accepted (in the message, `example` shows one
 * part); naming one twice is an error. `what` describes the whole text, for an empty one.
 */
export function parseLabel<K extends RoutingFlagOption>(text: string, name: string, allowed: readonly K[], what: string, example: string): { option: K; value: string }[] {
  const parts = text.trim().split(/\s+|\+(?=[a-z])/).filter(Boolean);
  if (parts.length === 0) throw new TypeError(expected(what, name, text));
  const out: { option: K; value: string }[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    const flag = eq < 0 ? undefined : part.slice(0, eq);
    const option = allowed.find((o) => ROUTING_FLAGS[o] === flag);
    if (option === undefined) throw new TypeError(expected(`KEY=VALUE with KEY one of ${allowed.map((o) => ROUTING_FLAGS[o]).join(', ')} (e.g. '${example}')`, name, text));
    if (out.some((p) => p.option === option)) throw new TypeError(`${name} names ${flag} twice (${JSON.stringify(text)})`);
    out.push({ option, value: part.slice(eq + 1) });
  }
  return out;
}

/** One value for one layer, as a layer spec ("3:0.8"; "3:0,5" for expert ids). */
export function onLayer(layer: number, value: string): string {
  return `${layer}:${value}`;
}

/** "i" or "i-j" → the layer indices, checked against the model. */
export function layerRange(text: string, name: string, info: ModelInfo): number[] {
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
export function perLayer(value: unknown, name: string, info: ModelInfo, fallback: number, check: (v: unknown, n: string) => number): number[] {
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

export function formatNumber(x: number): string {
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

export function formatMask(mask: readonly (readonly number[])[], info: ModelInfo): string {
  const moe = info.moeLayers.map((l) => l.layer);
  const first = mask[moe[0]!] ?? [];
  if (moe.every((il) => sameIds(mask[il] ?? [], first))) return first.join(',');
  return moe.filter((il) => (mask[il] ?? []).length).map((il) => `${il}:${mask[il]!.join(',')}`).join(';');
}

export function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** maskExperts in any of its forms → per layer, the masked experts' ids in ascending order. */
export function parseMask(value: unknown, info: ModelInfo): number[][] {
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
  const idText = (t: string, at: string): number[] => ids(expertIds(t, at, `an expert id in [0, ${N - 1}]`), at);
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

