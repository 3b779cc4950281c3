/**
 * evaluate(): perplexity of a text under a model or context, by llama-perplexity's method and numbers.
 * Validation and input handling live here; the loop itself is native/EvaluateWorker.cpp.
 */
import { readFile } from 'node:fs/promises';

import { CONTEXT_OPTIONS, Context, resolveContextOptions } from './context.js';
import { MoeEvalError, toAbortReason } from './errors.js';
import { Model } from './model.js';
import { type ResolvedRouting, type Routing, resolveRouting } from './routing.js';
import { checkOptionNames, expected, integer, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface EvaluateProgress {
  chunksDone: number;
  chunksTotal: number;
  /** Running perplexity over the chunks done so far (what llama-perplexity prints as [i]ppl). */
  perplexity: number;
}

export interface EvaluateOptions {
  text?: string;
  tokens?: Int32Array | readonly number[];
  /** Path of a UTF-8 text file. */
  file?: string;
  contextSize?: number;
  batchSize?: number;
  ubatchSize?: number;
  threads?: number;
  /** At most this many chunks (llama-perplexity's --chunks). */
  chunks?: number;
  routing?: Routing;
  onProgress?: (p: EvaluateProgress) => void;
  signal?: AbortSignal;
}

export interface ChunkResult {
  index: number;
  /** Mean negative log-likelihood of the chunk's scored tokens (nats). */
  nll: number;
  perplexity: number;
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
  tokensPerSecond: number;
  elapsedMs: number;
  routing: ResolvedRouting;
  model: { path: string; architecture: string; fileType: string };
}

const EVALUATE_OPTIONS = ['text', 'tokens', 'file', 'chunks', 'onProgress', 'signal', ...CONTEXT_OPTIONS] as const;

/** Reads the text or tokens named by `o` (exactly one of text, tokens, file). @internal */
export async function inputTokens(model: Model, o: Record<string, unknown>, where: string): Promise<Int32Array> {
  const given = (['text', 'tokens', 'file'] as const).filter((k) => o[k] !== undefined);
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
  if (signal?.aborted) throw toAbortReason(signal);

  if (target instanceof Context) {
    for (const k of ['contextSize', 'batchSize', 'ubatchSize', 'threads'] as const) {
      if (o[k] !== undefined && o[k] !== target.options[k]) {
        throw new TypeError(`${k} is fixed when the context is created (${target.options[k]}); received ${String(o[k])}. Create another context or pass the model.`);
      }
    }
  } else {
    resolveContextOptions(o, 'evaluate'); // validate before loading anything
  }

  const model = target instanceof Context ? target.model : target;
  const routing = o.routing === undefined ? undefined : resolveRouting(o.routing as Routing, model.info);
  const contextSize = target instanceof Context ? target.options.contextSize : resolveContextOptions(o, 'evaluate').contextSize;

  const run = async (ctx: Context): Promise<EvaluateResult> => {
    const tokens = await inputTokens(model, o, 'evaluate()');
    if (tokens.length < 2 * contextSize) {
      throw new MoeEvalError('ERR_TEXT_TOO_SHORT', `You need at least ${2 * contextSize} tokens to evaluate perplexity with a context of ${contextSize}; the input tokenizes to only ${tokens.length}`);
    }
    const { raw, routing: used } = await ctx.evaluateTokens(tokens, chunks === undefined ? {} : { chunks }, onProgress, signal, routing);
    return toResult(raw, used, ctx, tokens.length);
  };

  if (target instanceof Context) {
    // the whole evaluation, tokenization included, takes its place in the context's queue now, so
    // evaluations (and their routings) run in call order
    return target.enqueue(() => run(target));
  }
  const ctx = await target.createContext({
    contextSize: o.contextSize as number | undefined,
    batchSize: o.batchSize as number | undefined,
    ubatchSize: o.ubatchSize as number | undefined,
    threads: o.threads as number | undefined,
    routing: o.routing as Routing | undefined,
  });
  try {
    return await ctx.enqueue(() => run(ctx));
  } finally {
    await ctx.dispose();
  }
}

/** @internal */
export function toResult(raw: import('./native.js').NativeEvaluation, routing: ResolvedRouting, ctx: Context, nTokens: number): EvaluateResult {
  const mean = raw.nll / raw.count;
  const ppl = Math.exp(mean);
  const variance = raw.nll2 / raw.count - mean * mean;
  const stderr = variance > 0 && raw.count > 1 ? Math.sqrt(variance / (raw.count - 1)) * ppl : 0;
  const info = ctx.model.info;
  return {
    perplexity: ppl,
    stderr,
    nll: mean,
    tokens: nTokens,
    scoredTokens: raw.count,
    chunks: raw.chunks.map((c) => ({ index: c.index, nll: c.nll / c.count, perplexity: Math.exp(c.nll / c.count) })),
    contextSize: ctx.options.contextSize,
    batchSize: ctx.options.batchSize,
    tokensPerSecond: raw.elapsedMs > 0 ? (raw.tokensDecoded * 1000) / raw.elapsedMs : 0,
    elapsedMs: raw.elapsedMs,
    routing,
    model: { path: info.path, architecture: info.architecture, fileType: info.fileType },
  };
}
