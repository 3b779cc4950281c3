/**
 * Context: a llama_context with its own routing. Operations on one context run one at a time, in call
 * order (a promise queue); contexts of one model run in parallel.
 */
import { DisposedError, fromNative, toAbortReason } from './errors.js';
import type { Model } from './model.js';
import type { ContextMemory, NativeContext, NativeEvaluateOptions, NativeEvaluation } from './native.js';
import { defaultThreads, native } from './native.js';
import { type ResolvedRouting, type Routing, maxExperts, resolveRouting, toNativeRouting } from './routing.js';
import { checkOptionNames, expected, integer, optionsObject } from './validate.js';

export interface ContextOptions {
  /** Tokens per evaluated chunk (llama-perplexity's -c). Default 512. */
  contextSize?: number;
  /** Logical batch (llama-perplexity's -b): batchSize / contextSize chunks are evaluated together. Default 2048. */
  batchSize?: number;
  /** Physical batch (llama.cpp's -ub). Default 512. */
  ubatchSize?: number;
  /** CPU threads. Default: llama.cpp's rule (the physical cores; on a hybrid CPU its performance cores), see defaultThreads(). */
  threads?: number;
  /**
   * Flash attention (llama.cpp's -fa): 'auto' (default: llama.cpp uses it where the backend supports it),
   * 'on' or 'off'. Its arithmetic differs from the plain attention's, so a number equals llama-perplexity's
   * run with the same -fa.
   */
  flashAttention?: FlashAttention;
  /** Type of the K cache (llama.cpp's -ctk): one of KV_CACHE_TYPES. Default 'f16'. */
  cacheTypeK?: KvCacheType;
  /** Type of the V cache (llama.cpp's -ctv). Default 'f16'; a quantized one needs flash attention. */
  cacheTypeV?: KvCacheType;
  routing?: Routing;
}

/** The sizes and settings of a context without its routing: what every function that creates one takes. */
export type ContextSettings = Omit<ContextOptions, 'routing'>;

export const FLASH_ATTENTION = ['auto', 'on', 'off'] as const;
export type FlashAttention = (typeof FLASH_ATTENTION)[number];
/** The KV cache types llama.cpp's -ctk / -ctv accept (common/arg.cpp kv_cache_types). */
export const KV_CACHE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1'] as const;
export type KvCacheType = (typeof KV_CACHE_TYPES)[number];

/** The sizes and settings of an evaluation context: every function that creates one takes these (and only these) names. */
export const CONTEXT_SIZE_OPTIONS = ['contextSize', 'batchSize', 'ubatchSize', 'threads', 'flashAttention', 'cacheTypeK', 'cacheTypeV'] as const;
export const CONTEXT_OPTIONS = [...CONTEXT_SIZE_OPTIONS, 'routing'] as const;

/** The sizes and settings among an options object's fields, those given (unchecked: createContext() checks them). */
export function contextSizes(o: Partial<Record<(typeof CONTEXT_SIZE_OPTIONS)[number], unknown>>): Pick<ContextOptions, (typeof CONTEXT_SIZE_OPTIONS)[number]> {
  const out: Record<string, unknown> = {};
  for (const k of CONTEXT_SIZE_OPTIONS) if (o[k] !== undefined) out[k] = o[k];
  return out as Pick<ContextOptions, (typeof CONTEXT_SIZE_OPTIONS)[number]>;
}

export interface ResolvedContextOptions {
  contextSize: number;
  batchSize: number;
  ubatchSize: number;
  threads: number;
  flashAttention: FlashAttention;
  cacheTypeK: KvCacheType;
  cacheTypeV: KvCacheType;
  /** Chunks evaluated per batch (llama-perplexity's n_seq). */
  sequences: number;
}

/** The sizes llama-perplexity derives from -c and -b (n_seq = max(1, b / c), n_ctx = n_seq · c). */
export function resolveContextOptions(o: Record<string, unknown>, where: string, chunked = true): ResolvedContextOptions {
  const contextSize = o.contextSize === undefined ? 512 : integer(o.contextSize, `${where}.contextSize`, 8, 1 << 20);
  const batchSize = o.batchSize === undefined ? 2048 : integer(o.batchSize, `${where}.batchSize`, 1, 1 << 20);
  const ubatchSize = o.ubatchSize === undefined ? 512 : integer(o.ubatchSize, `${where}.ubatchSize`, 1, 1 << 20);
  const threads = o.threads === undefined ? defaultThreads() : integer(o.threads, `${where}.threads`, 1, 1024);
  const flashAttention = resolveFlashAttention(o.flashAttention, `${where}.flashAttention`);
  const cacheTypeK = resolveCacheType(o.cacheTypeK, `${where}.cacheTypeK`);
  const cacheTypeV = resolveCacheType(o.cacheTypeV, `${where}.cacheTypeV`);
  checkCacheTypes(flashAttention, cacheTypeV, where);
  if (chunked && batchSize > contextSize && batchSize % contextSize !== 0) {
    throw new RangeError(`Expected batchSize below contextSize or a multiple of it (as llama-perplexity requires) but received batchSize ${batchSize} with contextSize ${contextSize}`);
  }
  const sequences = Math.max(1, Math.floor(batchSize / contextSize));
  return { contextSize, batchSize, ubatchSize, threads, flashAttention, cacheTypeK, cacheTypeV, sequences };
}

/** The createContext() options of resolved sizes and settings (what a function passes on to a context it creates). */
export function contextOptionsOf(r: ResolvedContextOptions): Required<Omit<ContextOptions, 'routing'>> {
  return { contextSize: r.contextSize, batchSize: r.batchSize, ubatchSize: r.ubatchSize, threads: r.threads, flashAttention: r.flashAttention, cacheTypeK: r.cacheTypeK, cacheTypeV: r.cacheTypeV };
}

/** A function given a Context takes its sizes and settings from it: any of `o`'s that differ are refused. */
export function refuseContextChanges(target: Context, o: Record<string, unknown>): void {
  for (const k of CONTEXT_SIZE_OPTIONS) {
    if (o[k] !== undefined && o[k] !== target.options[k]) {
      throw new TypeError(`${k} is fixed when the context is created (${target.options[k]}); received ${String(o[k])}. Create another context or pass the model.`);
    }
  }
}

/**
 * The settings that change a result besides the sizes, for a results file's resume key: only those not
 * at their defaults, so files written before a setting existed still resume.
 */
export function settingsKey(r: ResolvedContextOptions): Partial<Pick<ResolvedContextOptions, 'flashAttention' | 'cacheTypeK' | 'cacheTypeV'>> {
  return {
    ...(r.flashAttention === 'auto' ? {} : { flashAttention: r.flashAttention }),
    ...(r.cacheTypeK === 'f16' ? {} : { cacheTypeK: r.cacheTypeK }),
    ...(r.cacheTypeV === 'f16' ? {} : { cacheTypeV: r.cacheTypeV }),
  };
}

/** 'f16' (llama.cpp's default) when not given. */
export function resolveCacheType(value: unknown, name: string): KvCacheType {
  if (value === undefined) return 'f16';
  if (!(KV_CACHE_TYPES as readonly unknown[]).includes(value)) throw new TypeError(expected(`one of ${KV_CACHE_TYPES.join(', ')}`, name, value));
  return value as KvCacheType;
}

/** llama.cpp computes a quantized V cache only inside flash attention (llama_init_from_model refuses it otherwise). */
export function checkCacheTypes(flashAttention: FlashAttention, cacheTypeV: KvCacheType, where: string): void {
  if (flashAttention === 'off' && !['f32', 'f16', 'bf16'].includes(cacheTypeV)) {
    throw new TypeError(`Expected ${where}.flashAttention 'on' or 'auto' with a quantized ${where}.cacheTypeV (${cacheTypeV}: llama.cpp reads a quantized V cache only in flash attention) but received 'off'`);
  }
}

/** 'auto' when not given. */
export function resolveFlashAttention(value: unknown, name: string): FlashAttention {
  if (value === undefined) return 'auto';
  if (!(FLASH_ATTENTION as readonly unknown[]).includes(value)) throw new TypeError(expected(`one of ${FLASH_ATTENTION.map((v) => `'${v}'`).join(', ')}`, name, value));
  return value as FlashAttention;
}

export class Context {
  readonly model: Model;
  readonly options: ResolvedContextOptions;
  readonly #native: NativeContext;
  #routing: ResolvedRouting;
  #applied: ResolvedRouting | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #disposed = false;
  #disposePromise: Promise<void> | undefined;
  #running = 0;
  readonly #onDispose: (() => void)[] = [];

  /** @internal use model.createContext() */
  constructor(model: Model, nativeContext: NativeContext, options: ResolvedContextOptions, routing: ResolvedRouting) {
    this.model = model;
    this.#native = nativeContext;
    this.options = options;
    this.#routing = routing;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** The routing the next evaluation uses. */
  get routing(): ResolvedRouting {
    return this.#routing;
  }

  /** Changes the routing for the following evaluations. No reload; the graph is rebuilt on next use. */
  setRouting(routing: Routing | undefined): ResolvedRouting {
    this.#check();
    this.#routing = resolveRouting(routing, this.model.info);
    return this.#routing;
  }

  /** @internal Runs `fn` after every earlier operation on this context. */
  enqueue<T>(fn: () => Promise<T>): Promise<T> {
    this.#check();
    const run = this.#queue.then(async () => {
      this.#check();
      this.#running++;
      try {
        return await fn();
      } finally {
        this.#running--;
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * @internal Runs `fn` with the addon object inside this context's queue (after every earlier
   * operation); `signal` aborts the native work, and a native error becomes a MoeEvalError.
   */
  runNative<T>(signal: AbortSignal | undefined, fn: (nativeContext: NativeContext) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      const onAbort = () => this.#native.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await fn(this.#native);
      } catch (e) {
        throw fromNative(e, signal);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    });
  }

  /** @internal Evaluates tokens under the current routing; must run inside enqueue(). */
  async evaluateTokens(
    tokens: Int32Array,
    chunkOptions: Omit<NativeEvaluateOptions, 'chunkSize'>,
    onProgress: ((p: { chunksDone: number; chunksTotal: number; perplexity: number }) => void) | undefined,
    signal: AbortSignal | undefined,
    routingForThis?: ResolvedRouting,
  ): Promise<{ raw: NativeEvaluation; routing: ResolvedRouting }> {
    if (signal?.aborted) throw toAbortReason(signal);
    // a routing given with the evaluation applies to it alone; the context's own routing (set at
    // creation or with setRouting()) is what later calls without one use
    const routing = routingForThis ?? this.#routing;
    this.#apply(routing);
    const onAbort = () => this.#native.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    // Native progress arrives through a thread-safe function and may trail the result: deliver events in
    // order, drop late ones, and always end with the final one before the promise resolves.
    let settled = false;
    let lastDone = 0;
    const progress = onProgress
      ? (p: { chunksDone: number; chunksTotal: number; perplexity: number }) => {
          if (settled || p.chunksDone <= lastDone) return;
          lastDone = p.chunksDone;
          onProgress(p);
        }
      : undefined;
    try {
      const raw = await this.#native.evaluate(tokens, { chunkSize: this.options.contextSize, ...chunkOptions }, progress);
      if (progress && lastDone < raw.chunkCount) progress({ chunksDone: raw.chunkCount, chunksTotal: raw.chunkCount, perplexity: raw.perplexity });
      settled = true;
      return { raw, routing };
    } catch (e) {
      settled = true;
      if (this.#disposed) throw new DisposedError('The context');
      throw fromNative(e, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * All logits (tokens × vocabSize, row-major) of one sequence decoded from position 0 under the current
   * routing. At most contextSize tokens.
   */
  logits(tokens: Int32Array | readonly number[], options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    this.#check();
    const t = tokens instanceof Int32Array ? tokens : Array.isArray(tokens) ? Int32Array.from(tokens) : undefined;
    if (!t || t.length < 1 || t.length > this.options.contextSize) {
      throw new RangeError(`Expected 1 to ${this.options.contextSize} tokens (an Int32Array or array) for logits() but received ${t ? t.length : typeof tokens}`);
    }
    const signal = options.signal;
    return this.enqueue(async () => {
      if (signal?.aborted) throw toAbortReason(signal);
      this.#apply(this.#routing);
      const onAbort = () => this.#native.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await this.#native.logits(t);
      } catch (e) {
        throw fromNative(e, signal);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    });
  }

  /** @internal The addon object, with this context's routing applied (for use as a KLD reference inside its queue). */
  nativeWithRouting(): NativeContext {
    this.#apply(this.#routing);
    return this.#native;
  }

  /** @internal The addon object of a calibration context (created with collectRoutingStats), inside its queue. */
  get nativeContext(): NativeContext {
    this.#check();
    return this.#native;
  }

  /** @internal Test hook: switch llama.cpp's routing hook off (null) or back on for this context. */
  setHookActive(active: boolean): void {
    this.#check();
    this.#native.setRouting(active ? toNativeRouting(this.#routing, this.model.info) : null);
    this.#applied = active ? this.#routing : undefined;
    this.#hookOff = !active;
  }

  #hookOff = false;

  #apply(routing: ResolvedRouting): void {
    if (this.#hookOff) return;
    if (this.#applied !== routing) {
      this.#native.setRouting(toNativeRouting(routing, this.model.info));
      this.#applied = routing;
    }
  }

  /** @internal */
  onDispose(fn: () => void): void {
    this.#onDispose.push(fn);
  }

  /**
   * llama.cpp's accounting of this context's memory in bytes: the weights it uses (shared by every
   * context of the model), its KV cache and its compute buffers — what llama.cpp prints as its memory
   * breakdown. Runs after earlier operations on this context.
   */
  async memory(): Promise<ContextMemory> {
    return await this.enqueue(async () => {
      try {
        return this.#native.memory();
      } catch (e) {
        throw fromNative(e);
      }
    });
  }

  /** Frees the context. A running evaluation is aborted (it rejects) and the promise settles after it. Idempotent. */
  dispose(): Promise<void> {
    if (this.#disposePromise) return this.#disposePromise;
    this.#disposed = true;
    if (this.#running > 0) this.#native.abort();
    this.#disposePromise = this.#queue.then(() => {
      this.#native.dispose();
      for (const fn of this.#onDispose) fn();
    });
    return this.#disposePromise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new DisposedError('The context');
    if (this.model.disposed) throw new DisposedError('The model');
  }
}

/** @internal What only moe-eval's own modules may ask of a new context. */
export interface InternalContextOptions {
  /** Calibration: read router and expert tensors through llama.cpp's eval callback (native/routing/RoutingStats). */
  collectRoutingStats?: boolean;
  /** Importance matrix: read every matrix multiplication's input through the eval callback, every token an output (native/metrics/Imatrix). */
  collectImatrix?: boolean;
  /** Reserve compute buffers for this many experts per token (default: the routing's largest count). */
  reserveExperts?: number;
  /** The context's routing, already resolved (instead of options.routing). */
  routing?: ResolvedRouting;
  /**
   * llama-perplexity's layout for HellaSwag, Winogrande and multiple choice: `parallel` sequences in one
   * unified KV cache of parallel × contextSize cells, any batch size (no chunking rule).
   */
  parallel?: number;
}

/** @internal The one place a native context is created: model.createContext() and calibrate() come here. */
export async function createContextFor(model: Model, optionsIn: ContextOptions, internal: InternalContextOptions = {}): Promise<Context> {
  const o = optionsObject(optionsIn, 'createContext options');
  checkOptionNames(o, CONTEXT_OPTIONS, 'createContext()');
  const resolved = resolveContextOptions(o, 'createContext', internal.parallel === undefined);
  const options = internal.parallel === undefined ? resolved : { ...resolved, sequences: internal.parallel };
  const routing = internal.routing ?? resolveRouting(o.routing as Routing | undefined, model.info);
  const kvSize = options.sequences * options.contextSize;
  const nativeContext = new (native().Context)(model.native, {
    kvSize,
    batchSize: Math.min(options.batchSize, kvSize),
    ubatchSize: Math.min(options.ubatchSize, options.batchSize, kvSize),
    sequences: options.sequences,
    threads: options.threads,
    flashAttention: options.flashAttention,
    cacheTypeK: options.cacheTypeK,
    cacheTypeV: options.cacheTypeV,
    reserveExperts: Math.max(internal.reserveExperts ?? 0, maxExperts(routing)),
    ...(internal.collectRoutingStats ? { collectRoutingStats: true } : {}),
    ...(internal.collectImatrix ? { collectImatrix: true } : {}),
    ...(internal.parallel !== undefined ? { unifiedKv: true } : {}),
  });
  try {
    await nativeContext.init();
  } catch (e) {
    nativeContext.dispose();
    throw fromNative(e);
  }
  return new Context(model, nativeContext, options, routing);
}
