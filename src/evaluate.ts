/**
 * evaluate(): perplexity of a text under a model or context, by llama-perplexity's method and numbers.
 * Validation and input handling live here; the loop itself is native/EvaluateWorker.cpp.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';

import { CONTEXT_OPTIONS, Context, contextOptionsOf, type ContextSettings, refuseContextChanges, resolveContextOptions, type FlashAttention, type KvCacheType } from './context.js';
import { MoeEvalError, toAbortReason } from './errors.js';
import { tokensFingerprint } from './fingerprint.js';
import { Model } from './model.js';
import { native } from './native.js';
import { kldTopKOption, readKldBaseHeader } from './reference.js';
import { type ResolvedRouting, type Routing, resolveRouting } from './routing.js';
import { checkOptionNames, expected, integer, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface EvaluateProgress {
  chunksDone: number;
  chunksTotal: number;
  /** Running perplexity over the chunks done so far (what llama-perplexity prints as [i]ppl). */
  perplexity: number;
}

export interface EvaluateOptions extends ContextSettings {
  text?: string;
  tokens?: Int32Array | readonly number[];
  /** Path of a UTF-8 text file. */
  file?: string;
  /** At most this many chunks (llama-perplexity's --chunks). */
  chunks?: number;
  /**
   * Start at this chunk of the text (0-based; default 0): evaluate chunks [firstChunk, firstChunk + chunks).
   * Chunk i is always tokens [i·contextSize, (i+1)·contextSize), so an evaluation done in pieces has the
   * same chunks as one done whole, and combineChunks() of the pieces' chunks gives the whole's numbers.
   */
  firstChunk?: number;
  routing?: Routing;
  /**
   * KL-divergence base: another Model (evaluated with its default routing), a Context (with its own
   * routing; same contextSize and batchSize), or the path of a base file written by llama-perplexity
   * --kl-divergence-base or by `saveReference`. Its tokens are used; text/tokens/file, when given, must match.
   */
  reference?: Model | Context | string;
  /** Write this evaluation's log-probabilities as a KL-divergence base file (llama.cpp's format). */
  saveReference?: string;
  /**
   * Write `saveReference` in the compact format instead: per scored token the top `kldTopK`
   * log-probabilities, the tail mass and the next token's log-probability (docs/kld-compact.md).
   * Reading detects the format, so a compact base is used as `reference` like any other.
   */
  kldTopK?: number;
  onProgress?: (p: EvaluateProgress) => void;
  signal?: AbortSignal;
}

/** The text and the context sizes, as evaluate() takes them: every function that reads text through a context takes these. */
export type TextAndSizes = Pick<EvaluateOptions, 'text' | 'file' | 'tokens' | 'contextSize' | 'batchSize' | 'ubatchSize' | 'threads' | 'flashAttention' | 'cacheTypeK' | 'cacheTypeV' | 'chunks'>;

/** The text and sizes of a run that evaluates many routings into a resumable results file (sweep(), scan()). */
export interface RunOptions extends TextAndSizes {
  /** JSONL results file (created with its folder); also the resume state. */
  out: string;
}

/** KL-divergence statistics as llama-perplexity --kl-divergence prints them (Δp values are probabilities, not %). */
export type KldResult = import('./native.js').NativeKld;

export interface ChunkResult {
  /** The chunk's index in the text (tokens [index·contextSize, (index+1)·contextSize)). */
  index: number;
  /** Mean negative log-likelihood of the chunk's scored tokens (nats). */
  nll: number;
  perplexity: number;
  /** Scored tokens of the chunk. */
  count: number;
  /** Σ NLL and Σ NLL² over the chunk's scored tokens: the sums the totals are made of (combineChunks()). */
  sumNll: number;
  sumNll2: number;
  /** Against a reference: the chunk's mean KLD, Σ KLD, Σ KLD², and the tokens whose top token is the reference's. */
  kld?: { mean: number; sum: number; sum2: number; sameTop: number };
}

/** The totals of a set of chunks (e.g. the pieces of an evaluation done in parts), combineChunks(). */
export interface ChunkTotals {
  perplexity: number;
  stderr: number;
  nll: number;
  /** Scored tokens. */
  count: number;
  kldMean: number | null;
  kldUnc: number | null;
  sameTop: number | null;
}

/**
 * The perplexity, its ±, the mean NLL and (against a reference) mean KLD ± and same-top of a set of
 * chunks, from their sums, added in index order as the native loop adds them: the chunks of an
 * evaluation done in pieces give the numbers of the evaluation done whole. The formulas are
 * llama-perplexity's, applied by the same native code as a whole evaluation's (native/metrics/Combine.cpp).
 */
export function combineChunks(chunks: readonly ChunkResult[]): ChunkTotals {
  const sorted = [...chunks].sort((a, b) => a.index - b.index);
  let nll = 0;
  let nll2 = 0;
  let count = 0;
  let kld = 0;
  let kld2 = 0;
  let sameTop = 0;
  const withKld = sorted.length > 0 && sorted.every((c) => c.kld);
  for (const c of sorted) {
    nll += c.sumNll;
    nll2 += c.sumNll2;
    count += c.count;
    if (withKld) {
      kld += c.kld!.sum;
      kld2 += c.kld!.sum2;
      sameTop += c.kld!.sameTop;
    }
  }
  if (count === 0) return { perplexity: 0, stderr: 0, nll: 0, count: 0, kldMean: null, kldUnc: null, sameTop: null };
  const e = native().estimateFromSums({ nll, nll2, count, ...(withKld ? { kld: { sum: kld, sum2: kld2, sameTop } } : {}) });
  return {
    perplexity: e.perplexity,
    stderr: e.stderr,
    nll: e.nll,
    count,
    kldMean: e.kldMean ?? null,
    kldUnc: e.kldUnc ?? null,
    sameTop: e.sameTop ?? null,
  };
}

export interface EvaluateResult {
  perplexity: number;
  /** llama-perplexity's "±" on the perplexity. */
  stderr: number;
  /** Mean negative log-likelihood per scored token (nats). */
  nll: number;
  /** Tokens in the input (after tokenization, BOS included). */
  tokens: number;
  /** Tokens whose likelihood was scored. */
  scoredTokens: number;
  chunks: ChunkResult[];
  contextSize: number;
  batchSize: number;
  ubatchSize: number;
  /** CPU threads the evaluation ran with (tokensPerSecond was measured with them). */
  threads: number;
  /** Flash attention as asked for (llama.cpp's -fa; 'auto' lets llama.cpp decide per backend). */
  flashAttention: FlashAttention;
  /** The KV cache types (llama.cpp's -ctk / -ctv). */
  cacheTypeK: KvCacheType;
  cacheTypeV: KvCacheType;
  tokensPerSecond: number;
  elapsedMs: number;
  /** Of elapsedMs, the time spent on the logits after each decode (log-softmax, KLD, base rows); the rest is llama.cpp decoding. */
  scoringMs: number;
  routing: ResolvedRouting;
  /**
   * k̄: the experts actually mixed per token, measured from the graph (the kept experts of -ser / topP
   * counted per token; the graph's k elsewhere). `perLayer` has one entry per MoE layer (info.moeLayers order);
   * `mean` is their mean. Empty for a dense model.
   */
  expertsPerToken: { mean: number; perLayer: number[] };
  model: { path: string; architecture: string; fileType: string };
  /** Present when evaluated against a reference. */
  kld?: KldResult;
  /** Where the base file was written (saveReference). */
  savedReference?: string;
}

/** What to evaluate: exactly one of these, in every function that reads text (inputTokens()). */
export const INPUT_OPTIONS = ['text', 'tokens', 'file'] as const;
const EVALUATE_OPTIONS = [...INPUT_OPTIONS, 'chunks', 'firstChunk', 'reference', 'saveReference', 'kldTopK', 'onProgress', 'signal', ...CONTEXT_OPTIONS] as const;

/** Reads the text or tokens named by `o` (exactly one of text, tokens, file). @internal */
export async function inputTokens(model: Model, o: Record<string, unknown>, where: string, fallback?: Int32Array): Promise<Int32Array> {
  const given = (['text', 'tokens', 'file'] as const).filter((k) => o[k] !== undefined);
  if (given.length === 0 && fallback) return fallback;
  if (given.length !== 1) {
    throw new TypeError(`Expected exactly one of text, tokens or file for ${where} but received ${given.length ? given.join(', ') : 'none'}`);
  }
  if (o.tokens !== undefined) {
    const t = o.tokens;
    if (t instanceof Int32Array) return t;
    if (!Array.isArray(t) || !t.every((x) => Number.isInteger(x))) throw new TypeError(expected('an Int32Array or an array of integers', `${where}.tokens`, t));
    return Int32Array.from(t as number[]);
  }
  let text: string;
  if (o.file !== undefined) {
    if (typeof o.file !== 'string' || o.file.length === 0) throw new TypeError(expected('a file path', `${where}.file`, o.file));
    try {
      text = await readFile(o.file, 'utf8');
    } catch (e) {
      throw new MoeEvalError('ERR_FILE', `Cannot read text file ${o.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  } else {
    if (typeof o.text !== 'string') throw new TypeError(expected('a string', `${where}.text`, o.text));
    text = o.text;
  }
  return model.tokenize(text);
}

export async function evaluate(target: Model | Context, options: EvaluateOptions): Promise<EvaluateResult> {
  if (!(target instanceof Model) && !(target instanceof Context)) throw new TypeError(expected('a Model or a Context', 'evaluate() target', target));
  const o = optionsObject(options, 'evaluate options');
  checkOptionNames(o, EVALUATE_OPTIONS, 'evaluate()');
  const signal = optionalSignal(o.signal, 'signal');
  const onProgress = optionalFunction<(p: EvaluateProgress) => void>(o.onProgress, 'onProgress');
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  const firstChunk = o.firstChunk === undefined ? 0 : integer(o.firstChunk, 'firstChunk', 0, 2 ** 31 - 1);
  if (firstChunk > 0 && o.saveReference !== undefined) throw new TypeError('saveReference writes a base from the first chunk; it cannot be combined with firstChunk');
  if (signal?.aborted) throw toAbortReason(signal);

  if (target instanceof Context) refuseContextChanges(target, o);
  // resolved once, before anything is loaded
  const sizes = target instanceof Context ? target.options : resolveContextOptions(o, 'evaluate');

  const model = target instanceof Context ? target.model : target;
  const routing = o.routing === undefined ? undefined : resolveRouting(o.routing as Routing, model.info);
  const ref = o.reference;
  if (ref !== undefined && typeof ref !== 'string' && !(ref instanceof Model) && !(ref instanceof Context)) {
    throw new TypeError(expected('a Model, a Context or a base file path', 'reference', ref));
  }
  if (ref instanceof Context && ref === target) throw new TypeError('A context cannot be its own reference; create a second context (or pass the model)');
  if (o.saveReference !== undefined && (typeof o.saveReference !== 'string' || o.saveReference === '')) {
    throw new TypeError(expected('a file path', 'saveReference', o.saveReference));
  }
  const kldTopK = kldTopKOption(o.kldTopK);
  if (kldTopK !== undefined && o.saveReference === undefined) throw new TypeError('kldTopK sets the format of the base saveReference writes; give saveReference too');
  const base = typeof ref === 'string' ? await readKldBaseHeader(ref) : undefined;
  if (base && base.vocabSize !== model.info.vocabSize) {
    throw new MoeEvalError('ERR_KLD_BASE', `The base ${base.path} was made with a vocabulary of ${base.vocabSize} tokens; this model has ${model.info.vocabSize}`);
  }
  let contextSize = sizes.contextSize;
  if (base) {
    if (target instanceof Model && o.contextSize === undefined) contextSize = base.contextSize;
    if (contextSize !== base.contextSize) {
      throw new MoeEvalError('ERR_KLD_BASE', `The base ${base.path} was made with contextSize ${base.contextSize}; this evaluation uses contextSize ${contextSize} (use the base's, or make a new base)`);
    }
    if (firstChunk >= base.chunks) {
      throw new RangeError(`Expected less than ${base.chunks} for firstChunk: the base ${base.path} holds ${base.chunks} chunks, but received ${firstChunk}`);
    }
    if (chunks !== undefined && firstChunk + chunks > base.chunks) {
      throw new RangeError(`Expected at most ${base.chunks - firstChunk} for chunks: the base ${base.path} holds ${base.chunks} chunks${firstChunk ? ` (from firstChunk ${firstChunk})` : ''}, but received ${chunks}`);
    }
  }
  const chunksFor = (n: number | undefined) => (base ? Math.min(n ?? base.chunks - firstChunk, base.chunks - firstChunk) : n);

  const run = async (ctx: Context, refCtx: Context | undefined): Promise<EvaluateResult> => {
    let tokens = await inputTokens(model, o, 'evaluate()', base?.tokens);
    if (base && tokens !== base.tokens) {
      const n = Math.min(tokens.length, base.tokens.length);
      const firstDiff = tokens.subarray(0, n).findIndex((t, i) => t !== base.tokens[i]);
      if (firstDiff >= 0 || tokens.length < base.tokens.length) {
        throw new MoeEvalError('ERR_KLD_BASE', `The text does not tokenize to the tokens of the base ${base.path}${firstDiff >= 0 ? ` (first difference at token ${firstDiff})` : ' (the text is shorter)'}`);
      }
      tokens = base.tokens;
    }
    if (tokens.length < 2 * contextSize) {
      throw new MoeEvalError('ERR_TEXT_TOO_SHORT', `You need at least ${2 * contextSize} tokens to evaluate perplexity with a context of ${contextSize}; the input tokenizes to only ${tokens.length}`);
    }
    if (firstChunk >= Math.floor(tokens.length / contextSize)) {
      throw new RangeError(`Expected less than ${Math.floor(tokens.length / contextSize)} for firstChunk: the text has ${Math.floor(tokens.length / contextSize)} chunks of ${contextSize} tokens, but received ${firstChunk}`);
    }
    if (refCtx && (refCtx.options.contextSize !== ctx.options.contextSize || refCtx.options.batchSize !== ctx.options.batchSize)) {
      throw new TypeError(`The reference context must have the same contextSize and batchSize (${ctx.options.contextSize}, ${ctx.options.batchSize}); received ${refCtx.options.contextSize}, ${refCtx.options.batchSize}`);
    }
    const c = chunksFor(chunks);
    const native = {
      ...(c === undefined ? {} : { chunks: c }),
      ...(firstChunk ? { firstChunk } : {}),
      ...(base ? { baseFile: base.path, baseDataOffset: base.dataOffset, baseTopK: base.topK, baseTailSamples: base.tailSamples } : {}),
      ...(o.saveReference ? { writeBaseFile: resolvePath(o.saveReference as string), ...(kldTopK ? { writeBaseTopK: kldTopK } : {}) } : {}),
      ...(refCtx ? { reference: refCtx.nativeWithRouting() } : {}),
    };
    if (o.saveReference) await mkdir(dirname(resolvePath(o.saveReference as string)), { recursive: true });
    const { raw, routing: used } = await ctx.evaluateTokens(tokens, native, onProgress, signal, routing);
    const result = toResult(raw, used, ctx, tokens.length);
    if (o.saveReference) result.savedReference = resolvePath(o.saveReference as string);
    return result;
  };

  // the reference context's queue is held too, so nothing else runs on it meanwhile
  const withReference = async (ctx: Context): Promise<EvaluateResult> => {
    if (ref instanceof Context) return ref.enqueue(() => run(ctx, ref));
    if (ref instanceof Model) {
      const refCtx = await ref.createContext({ ...contextOptionsOf(ctx.options), contextSize });
      try {
        return await refCtx.enqueue(() => run(ctx, refCtx));
      } finally {
        await refCtx.dispose();
      }
    }
    return run(ctx, undefined);
  };

  if (target instanceof Context) {
    // the whole evaluation, tokenization included, takes its place in the context's queue now, so
    // evaluations (and their routings) run in call order
    return target.enqueue(() => withReference(target));
  }
  const ctx = await target.createContextWith(
    { ...contextOptionsOf(sizes), contextSize },
    { routing: routing ?? resolveRouting(undefined, model.info) },
  );
  try {
    return await ctx.enqueue(() => withReference(ctx));
  } finally {
    await ctx.dispose();
  }
}

function expertsPerToken(perLayerRaw: readonly number[], info: Context['model']['info']): { mean: number; perLayer: number[] } {
  const perLayer = info.moeLayers.map((l) => perLayerRaw[l.layer] ?? -1).filter((x) => x >= 0);
  return { mean: perLayer.length ? perLayer.reduce((a, b) => a + b, 0) / perLayer.length : 0, perLayer };
}

/** @internal */
export function toResult(raw: import('./native.js').NativeEvaluation, routing: ResolvedRouting, ctx: Context, nTokens: number): EvaluateResult {
  const info = ctx.model.info;
  return {
    perplexity: raw.perplexity,
    stderr: raw.stderr,
    nll: raw.meanNll,
    tokens: nTokens,
    scoredTokens: raw.count,
    chunks: raw.chunks.map((c) => ({
      index: c.index,
      nll: c.meanNll,
      perplexity: c.perplexity,
      count: c.count,
      sumNll: c.sumNll,
      sumNll2: c.sumNll2,
      ...(c.sumKld === undefined ? {} : { kld: { mean: c.count ? c.sumKld / c.count : 0, sum: c.sumKld, sum2: c.sumKld2!, sameTop: c.sameTop! } }),
    })),
    contextSize: ctx.options.contextSize,
    batchSize: ctx.options.batchSize,
    ubatchSize: ctx.options.ubatchSize,
    threads: ctx.options.threads,
    flashAttention: ctx.options.flashAttention,
    cacheTypeK: ctx.options.cacheTypeK,
    cacheTypeV: ctx.options.cacheTypeV,
    tokensPerSecond: raw.elapsedMs > 0 ? (raw.tokensDecoded * 1000) / raw.elapsedMs : 0,
    elapsedMs: raw.elapsedMs,
    scoringMs: raw.scoringMs,
    routing,
    expertsPerToken: expertsPerToken(raw.expertsPerLayer, info),
    model: { path: info.path, architecture: info.architecture, fileType: info.fileType },
    ...(raw.kld ? { kld: raw.kld } : {}),
  };
}

/**
 * The KL-divergence base of the model's own routing that a run keeps beside its results file
 * (`<out>.base.kld`, for reference 'default'): the file already there when it fits these tokens (the
 * same context size and format, tokens that begin the same), else evaluated with `ctx` and written now.
 */
export async function defaultRoutingBase(
  ctx: Context,
  out: string,
  tokens: Int32Array,
  o: { chunks?: number | undefined; kldTopK?: number | undefined; signal?: AbortSignal | undefined; onProgress?: (p: EvaluateProgress) => void },
): Promise<string> {
  const path = `${out}.base.kld`;
  const usable =
    existsSync(path) &&
    (await readKldBaseHeader(path).then(
      (h) =>
        h.contextSize === ctx.options.contextSize &&
        h.topK === (o.kldTopK === undefined ? 0 : Math.min(o.kldTopK, h.vocabSize)) &&
        tokensFingerprint(h.tokens.subarray(0, Math.min(h.tokens.length, tokens.length))) === tokensFingerprint(tokens.subarray(0, h.tokens.length)),
      () => false,
    ));
  if (!usable) {
    await evaluate(ctx, {
      tokens,
      ...(o.chunks ? { chunks: o.chunks } : {}),
      routing: {},
      saveReference: path,
      ...(o.kldTopK === undefined ? {} : { kldTopK: o.kldTopK }),
      signal: o.signal,
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
  }
  return path;
}
