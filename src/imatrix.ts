/**
 * imatrix(): the importance matrix llama-imatrix computes, under any routing; readImatrix() /
 * writeImatrix() for llama.cpp's imatrix files (GGUF, and the legacy .dat); imatrixCoverage() for how
 * many calibration tokens reached each expert. Collection is native/metrics/Imatrix.cpp fed by
 * llama.cpp's eval callback during the evaluate loop (native/EvaluateWorker.cpp: llama-imatrix's
 * chunking is llama-perplexity's, with every token an output).
 */
import { resolve as resolvePath } from 'node:path';

import { fromNative, toAbortReason } from './errors.js';
import { type EvaluateProgress, INPUT_OPTIONS, type TextAndSizes, inputTokens } from './evaluate.js';
import type { Model } from './model.js';
import { type NativeLayerRouting, native } from './native.js';
import { CONTEXT_OPTIONS, contextSizes, resolveContextOptions } from './context.js';
import { type ResolvedRouting, type Routing, maxExperts, resolveRouting, toNativeRouting } from './routing.js';
import { checkOptionNames, expected, integer, nonEmptyString, numberInRange, optionalFunction, optionalSignal, optionsObject } from './validate.js';

/** One tensor's data: Σx² of its input per column, one row per matrix (expert), and the token rows summed per matrix. */
export interface ImatrixEntry {
  /** The weight's name, e.g. `blk.3.ffn_up_exps.weight`. */
  name: string;
  /** counts.length rows of (values.length / counts.length) columns. */
  values: Float32Array;
  /** Tokens summed per matrix: one for a dense tensor, one per expert for the experts' tensors. */
  counts: Float64Array;
}

/** An importance matrix as llama.cpp's imatrix GGUF file holds it. */
export interface ImatrixData {
  entries: ImatrixEntry[];
  /** imatrix.datasets: the calibration text files it was computed on. */
  datasets: string[];
  /** imatrix.chunk_count: chunks the largest count covers. */
  chunkCount: number;
  /** imatrix.chunk_size: the context size of the collection (0 in legacy files). */
  chunkSize: number;
  /**
   * Read from a legacy .dat file: then `values` hold (mean x²) × ncall and `counts` the single ncall
   * of each entry (per-expert counts are not in that format).
   */
  legacy?: boolean;
}

/** The text and sizes as llama-imatrix takes them: -c (default 512), -b (2048), -ub (512), -t, --chunks. */
export interface ImatrixOptions extends TextAndSizes {
  /** The routing during collection, e.g. { experts: 4 } so rarely chosen experts see data (the model then runs with 4). */
  routing?: Routing;
  /**
   * Compute this many experts per token for the statistics but mix only the routing's own (the
   * model's top n by default) with its weight rule: rarely chosen experts see data while every layer
   * sees the hidden states of the routing being calibrated (what calibrate() does for its profile).
   */
  computeExperts?: number;
  /** Write the matrix here (llama-imatrix -o). */
  out?: string;
  /** llama-imatrix --output-format: 'gguf' (default) or 'dat' (legacy). */
  outputFormat?: 'gguf' | 'dat';
  /** The name stored in imatrix.datasets (default: `file` as given; none for text/tokens). */
  dataset?: string;
  onProgress?: (p: EvaluateProgress) => void;
  signal?: AbortSignal;
}

export interface ImatrixResult extends ImatrixData {
  /** Perplexity of the chunks' second halves, as llama-imatrix prints it (every token an output). */
  perplexity: number;
  /** Tokens decoded (chunks × contextSize). */
  tokens: number;
  /** Chunks processed. */
  chunks: number;
  contextSize: number;
  routing: ResolvedRouting;
  /** computeExperts, when given. */
  computedExperts?: number;
  elapsedMs: number;
  /** Where the matrix was written (out). */
  file?: string;
}

const IMATRIX_OPTIONS = [...INPUT_OPTIONS, ...CONTEXT_OPTIONS, 'chunks', 'computeExperts', 'out', 'outputFormat', 'dataset', 'onProgress', 'signal'];

/** chunk_count as llama-imatrix records it: the largest count in whole chunks. */
function chunkCountOf(entries: readonly ImatrixEntry[], chunkSize: number): number {
  let max = 0;
  for (const e of entries) for (const c of e.counts) max = Math.max(max, Math.floor(c / chunkSize));
  return max;
}

export async function imatrix(model: Model, options: ImatrixOptions): Promise<ImatrixResult> {
  const o = optionsObject(options, 'imatrix options');
  checkOptionNames(o, IMATRIX_OPTIONS, 'imatrix()');
  const sizes = resolveContextOptions(o, 'imatrix');
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  const out = o.out === undefined ? undefined : nonEmptyString(o.out, 'out');
  const format = o.outputFormat ?? 'gguf';
  if (format !== 'gguf' && format !== 'dat') throw new RangeError(expected("'gguf' or 'dat'", 'outputFormat', o.outputFormat));
  const dataset = o.dataset === undefined ? (typeof o.file === 'string' ? o.file : undefined) : nonEmptyString(o.dataset, 'dataset');
  const signal = optionalSignal(o.signal, 'signal');
  const onProgress = optionalFunction<(p: EvaluateProgress) => void>(o.onProgress, 'onProgress');
  if (signal?.aborted) throw toAbortReason(signal);
  const info = model.info;
  const routing = resolveRouting(o.routing as Routing | undefined, info);
  let computed: NativeLayerRouting[] | undefined;
  const k = o.computeExperts === undefined ? undefined : integer(o.computeExperts, 'computeExperts', 1, info.expertCount);
  if (k !== undefined) {
    if (info.expertCount === 0) throw new RangeError(`computeExperts needs a Mixture-of-Experts model; ${info.architecture} model has no experts`);
    const most = maxExperts(routing);
    if (k <= most) throw new RangeError(expected(`more than the routing's ${most} experts per token`, 'computeExperts', k));
    const wide = resolveRouting({ ...((o.routing as Routing | undefined) ?? {}), experts: k }, info);
    computed = toNativeRouting(wide, info).map((l, il) => ({ ...l, mixTop: routing.experts[il] ?? info.expertsUsed }));
  }
  const tokens = await inputTokens(model, o, 'imatrix()');

  const ctx = await model.createContextWith(
    { ...contextSizes(sizes), ...(o.routing === undefined ? {} : { routing: o.routing as Routing }) },
    { collectImatrix: true, ...(k ? { reserveExperts: k } : {}) },
  );
  let raw;
  let entries: ImatrixEntry[];
  try {
    ({ raw, entries } = await ctx.runNative(signal, async () => {
      const nativeCtx = ctx.nativeWithRouting();
      // computeExperts: k experts computed, the routing's own mixed (the hook's mixTop)
      if (computed) nativeCtx.setRouting(computed);
      const r = await nativeCtx.evaluate(tokens, { chunkSize: sizes.contextSize, ...(chunks ? { chunks } : {}) }, onProgress);
      return { raw: r, entries: nativeCtx.takeImatrix() };
    }));
  } finally {
    await ctx.dispose();
  }
  const result: ImatrixResult = {
    entries,
    datasets: dataset === undefined ? [] : [dataset],
    chunkCount: chunkCountOf(entries, sizes.contextSize),
    chunkSize: sizes.contextSize,
    perplexity: raw.perplexity,
    tokens: raw.tokensDecoded,
    chunks: raw.chunkCount,
    contextSize: sizes.contextSize,
    routing,
    ...(k ? { computedExperts: k } : {}),
    elapsedMs: raw.elapsedMs,
  };
  if (out !== undefined) {
    await writeImatrix(out, result, { outputFormat: format });
    result.file = resolvePath(out);
  }
  return result;
}

/** Reads an importance matrix file: llama-imatrix's GGUF, or the legacy .dat (see ImatrixData.legacy). */
export async function readImatrix(path: string): Promise<ImatrixData> {
  nonEmptyString(path, 'path');
  try {
    const r = await native().readImatrix(resolvePath(path));
    return { entries: r.entries, datasets: r.datasets, chunkCount: r.chunkCount, chunkSize: r.chunkSize, ...(r.legacy ? { legacy: true } : {}) };
  } catch (e) {
    throw fromNative(e);
  }
}

/**
 * Writes an importance matrix in llama-imatrix's GGUF format (byte-identical to its file for the same
 * data), or with { outputFormat: 'dat' } in the legacy format (per-expert counts are lost there).
 */
export async function writeImatrix(path: string, data: ImatrixData, options: { outputFormat?: 'gguf' | 'dat' } = {}): Promise<void> {
  nonEmptyString(path, 'path');
  const d = optionsObject(data, 'imatrix data');
  const o = optionsObject(options, 'writeImatrix options');
  checkOptionNames(o, ['outputFormat'], 'writeImatrix()');
  const format = o.outputFormat ?? 'gguf';
  if (format !== 'gguf' && format !== 'dat') throw new RangeError(expected("'gguf' or 'dat'", 'outputFormat', o.outputFormat));
  if (d.legacy) throw new RangeError('writeImatrix() cannot write data read from a legacy .dat file (its sums are not raw sums)');
  if (!Array.isArray(d.entries)) throw new TypeError(expected('an array', 'entries', d.entries));
  for (const e of d.entries as ImatrixEntry[]) {
    if (!(e?.values instanceof Float32Array) || !(e.counts instanceof Float64Array) || typeof e.name !== 'string') {
      throw new TypeError(expected('{ name, values: Float32Array, counts: Float64Array }', 'entries[]', e));
    }
    if (e.counts.length === 0 || e.values.length % e.counts.length !== 0) throw new RangeError(`Expected a whole row of values per count for entries[] ${e.name}`);
  }
  const datasets = d.datasets ?? [];
  if (!Array.isArray(datasets) || !datasets.every((x) => typeof x === 'string')) throw new TypeError(expected('an array of strings', 'datasets', datasets));
  const chunkSize = integer(d.chunkSize, 'chunkSize', format === 'dat' ? 1 : 0, 2 ** 31 - 1);
  const chunkCount = integer(d.chunkCount, 'chunkCount', 0, 2 ** 31 - 1);
  try {
    await native().writeImatrix(resolvePath(path), { entries: d.entries as ImatrixEntry[], datasets, chunkCount, chunkSize, legacy: format === 'dat' });
  } catch (e) {
    throw fromNative(e);
  }
}

export interface ExpertCoverage {
  layer: number;
  expert: number;
  /** Calibration tokens routed to this expert. */
  tokens: number;
  /** tokens / (the layer's routed tokens / N): 1 = its fair share. */
  share: number;
}

export interface ImatrixCoverage {
  /** The threshold used: experts with share below it are listed in `below`. */
  threshold: number;
  /** Per MoE layer, the tokens that reached each expert (from the experts' tensors' counts). */
  layers: { layer: number; experts: number[] }[];
  /** Experts whose share is below the threshold, fewest tokens first. */
  below: ExpertCoverage[];
  /** Tensors with an expert that got no token at all (llama.cpp's "partial data"), with the fraction of experts covered. */
  partial: { name: string; covered: number }[];
}

/** The default coverage threshold: an expert that got under 10 % of its fair share of tokens is listed. */
export const DEFAULT_COVERAGE_THRESHOLD = 0.1;

/**
 * How well calibration covered the experts: per layer and expert, the tokens that reached it; the
 * experts below `threshold` × their fair share (the layer's routed tokens / N); the tensors with partial data.
 */
export function imatrixCoverage(data: ImatrixData, options: { threshold?: number } = {}): ImatrixCoverage {
  const o = optionsObject(options, 'imatrixCoverage options');
  checkOptionNames(o, ['threshold'], 'imatrixCoverage()');
  const threshold = o.threshold === undefined ? DEFAULT_COVERAGE_THRESHOLD : numberInRange(o.threshold, 'threshold', 0, Number.MAX_VALUE);
  const d = optionsObject(data, 'imatrix data');
  if (!Array.isArray(d.entries)) throw new TypeError(expected('an array', 'entries', d.entries));
  if (d.legacy) throw new RangeError('imatrixCoverage() needs per-expert counts, which a legacy .dat file does not have');
  const byLayer = new Map<number, number[]>();
  const partial: { name: string; covered: number }[] = [];
  for (const e of d.entries as ImatrixEntry[]) {
    const zeros = e.counts.reduce((a, c) => a + (c === 0 ? 1 : 0), 0);
    if (zeros > 0) partial.push({ name: e.name, covered: (e.counts.length - zeros) / e.counts.length });
    const m = /^blk\.(\d+)\..*_exps\.weight$/.exec(e.name);
    if (!m || e.counts.length < 2) continue;
    const layer = Number(m[1]);
    const prev = byLayer.get(layer);
    byLayer.set(layer, prev ? prev.map((c, i) => Math.max(c, e.counts[i] ?? 0)) : Array.from(e.counts));
  }
  const layers = [...byLayer.entries()].sort((a, b) => a[0] - b[0]).map(([layer, experts]) => ({ layer, experts }));
  const below: ExpertCoverage[] = [];
  for (const { layer, experts } of layers) {
    const fair = experts.reduce((a, c) => a + c, 0) / experts.length;
    experts.forEach((tokens, expert) => {
      const share = fair > 0 ? tokens / fair : 0;
      if (share < threshold) below.push({ layer, expert, tokens, share });
    });
  }
  below.sort((a, b) => a.tokens - b.tokens || a.layer - b.layer || a.expert - b.expert);
  return { threshold, layers, below, partial };
}
