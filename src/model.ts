/** loadModel() and the Model class: one loaded GGUF, shared by all its contexts. */
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';

import { Context, type ContextOptions, type InternalContextOptions, createContextFor } from './context.js';
import { DisposedError, MoeEvalError, fromNative, toAbortReason } from './errors.js';
import { type ModelInfo, toModelInfo } from './model-info.js';
import { type NativeModel, native } from './native.js';
import { checkOptionNames, expected, integer, nonEmptyString, optionalBoolean, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export type KvOverride = { key: string; type: 'int' | 'float' | 'bool' | 'str'; value: number | boolean | string };

export interface LoadModelOptions {
  /** Layers to offload to the GPU (llama.cpp's -ngl). Default 0; -1 = all. */
  gpuLayers?: number;
  /** Memory-map the file (default true). */
  useMmap?: boolean;
  /** llama.cpp's --override-kv, e.g. { key: 'llama.expert_used_count', type: 'int', value: 3 } or 'llama.expert_used_count=int:3'. */
  kvOverrides?: (KvOverride | string)[];
  /**
   * ggml RPC servers ('host:port', e.g. from `moe-eval rpc-server`) to place the layers on, like
   * llama.cpp's --rpc. All layers go there unless gpuLayers says otherwise. The protocol has no
   * authentication: use it on trusted networks only.
   */
  rpcServers?: string[];
  /** Load progress in [0, 1]. */
  onProgress?: (progress: number) => void;
  signal?: AbortSignal;
}

const LOAD_OPTIONS = ['gpuLayers', 'useMmap', 'kvOverrides', 'rpcServers', 'onProgress', 'signal'] as const;

/** Parses llama.cpp's --override-kv syntax KEY=TYPE:VALUE. */
export function parseKvOverride(spec: string): KvOverride {
  const m = /^([^=]+)=(int|float|bool|str):(.*)$/.exec(spec);
  if (!m) throw new TypeError(expected("KEY=TYPE:VALUE with TYPE int, float, bool or str (llama.cpp's --override-kv)", 'kvOverrides', spec));
  const [, key, type, raw] = m as unknown as [string, string, KvOverride['type'], string];
  if (type === 'int' || type === 'float') {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || (type === 'int' && !Number.isInteger(value))) {
      throw new TypeError(expected(`a ${type} value`, `kvOverrides '${key}'`, raw));
    }
    return { key, type, value };
  }
  if (type === 'bool') {
    if (raw !== 'true' && raw !== 'false') throw new TypeError(expected('true or false', `kvOverrides '${key}'`, raw));
    return { key, type, value: raw === 'true' };
  }
  return { key, type, value: raw };
}

/** An override in llama.cpp's --override-kv syntax. */
export function formatKvOverride(kv: KvOverride): string {
  return `${kv.key}=${kv.type}:${String(kv.value)}`;
}

function validateKv(kv: unknown, i: number): KvOverride {
  if (typeof kv === 'string') return parseKvOverride(kv);
  if (kv === null || typeof kv !== 'object') throw new TypeError(expected('KEY=TYPE:VALUE or { key, type, value }', `kvOverrides[${i}]`, kv));
  const { key, type, value } = kv as KvOverride;
  nonEmptyString(key, `kvOverrides[${i}].key`);
  if (key.length > 127) throw new RangeError(expected('a key of at most 127 bytes', `kvOverrides[${i}].key`, key));
  if (type === 'int' && (typeof value !== 'number' || !Number.isInteger(value))) throw new TypeError(expected('an integer', `kvOverrides[${i}].value`, value));
  else if (type === 'float' && (typeof value !== 'number' || !Number.isFinite(value))) throw new TypeError(expected('a finite number', `kvOverrides[${i}].value`, value));
  else if (type === 'bool' && typeof value !== 'boolean') throw new TypeError(expected('a boolean', `kvOverrides[${i}].value`, value));
  else if (type === 'str' && (typeof value !== 'string' || Buffer.byteLength(value) > 127)) throw new TypeError(expected('a string of at most 127 bytes', `kvOverrides[${i}].value`, value));
  else if (!['int', 'float', 'bool', 'str'].includes(type)) throw new TypeError(expected("'int', 'float', 'bool' or 'str'", `kvOverrides[${i}].type`, type));
  return { key, type, value };
}

/** Cheap checks that turn a wrong path into a clear error before llama.cpp sees it. */
async function checkModelFile(path: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MoeEvalError('ERR_FILE', code === 'ENOENT' ? `Model file not found: ${path}` : `Cannot access model file ${path}: ${code ?? String(e)}`);
  }
  if (!st.isFile()) throw new MoeEvalError('ERR_FILE', `Expected a GGUF file for the model path but received a ${st.isDirectory() ? 'directory' : 'non-regular file'}: ${path}`);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new MoeEvalError('ERR_FILE', `Cannot read model file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    if (bytesRead < 4 || buf.toString('latin1') !== 'GGUF') {
      throw new MoeEvalError('ERR_GGUF', `Expected a GGUF file (magic "GGUF") but ${path} starts with ${JSON.stringify(buf.subarray(0, bytesRead).toString('latin1'))}`);
    }
  } finally {
    await fh.close();
  }
}

export class Model {
  readonly path: string;
  readonly #native: NativeModel;
  #info: ModelInfo | undefined;
  #gpuLayers = 0;
  #useMmap = true;
  #disposed = false;
  readonly #contexts = new Set<Context>();

  /** Use loadModel(). */
  private constructor(path: string, nativeModel: NativeModel) {
    this.path = path;
    this.#native = nativeModel;
  }

  /** @internal */
  static async load(path: string, nativeModel: NativeModel, options: LoadModelOptions & { kvApplied: string[] }): Promise<Model> {
    const model = new Model(path, nativeModel);
    const signal = options.signal;
    const onAbort = () => nativeModel.abortLoad();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await nativeModel.load(options.onProgress);
    } catch (e) {
      throw fromNative(e, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    model.#info = toModelInfo(path, nativeModel.info(), options.kvApplied);
    model.#gpuLayers = options.gpuLayers ?? 0;
    model.#useMmap = options.useMmap ?? true;
    return model;
  }

  /** The layers offloaded at load (loadModel's gpuLayers; llama-bench's n_gpu_layers). */
  get gpuLayers(): number {
    return this.#gpuLayers;
  }

  /** Whether the file was memory-mapped (loadModel's useMmap). */
  get useMmap(): boolean {
    return this.#useMmap;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  get info(): ModelInfo {
    this.#check();
    return this.#info!;
  }

  /** @internal */
  get native(): NativeModel {
    this.#check();
    return this.#native;
  }

  /** Tokenizes like llama-perplexity: BOS added when the vocabulary asks for it, special tokens as text. */
  async tokenize(text: string, options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): Promise<Int32Array> {
    this.#check();
    if (typeof text !== 'string') throw new TypeError(expected('a string', 'text', text));
    const o = optionsObject(options, 'tokenize options');
    checkOptionNames(o, ['addSpecial', 'parseSpecial'], 'tokenize()');
    try {
      return await this.#native.tokenize(text, optionalBoolean(o.addSpecial, 'addSpecial') ?? true, optionalBoolean(o.parseSpecial, 'parseSpecial') ?? false);
    } catch (e) {
      throw fromNative(e);
    }
  }

  async createContext(options: ContextOptions = {}): Promise<Context> {
    return this.createContextWith(options, {});
  }

  /** @internal createContext() with what only moe-eval's own modules may ask (calibration statistics). */
  async createContextWith(options: ContextOptions, internal: InternalContextOptions): Promise<Context> {
    this.#check();
    const ctx = await createContextFor(this, options, internal);
    this.#contexts.add(ctx);
    ctx.onDispose(() => this.#contexts.delete(ctx));
    return ctx;
  }

  /** Frees the model and all its contexts (running evaluations are aborted first). Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await Promise.all([...this.#contexts].map((c) => c.dispose()));
    this.#native.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new DisposedError('The model');
  }
}

export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  nonEmptyString(path, 'path');
  const o = optionsObject(options, 'loadModel options');
  checkOptionNames(o, LOAD_OPTIONS, 'loadModel()');
  if (o.rpcServers !== undefined && (!Array.isArray(o.rpcServers) || !o.rpcServers.every((e) => typeof e === 'string' && /^[^\s:]+:\d{1,5}$/.test(e)))) {
    throw new TypeError(expected("an array of 'host:port' strings", 'rpcServers', o.rpcServers));
  }
  const rpcServers = (o.rpcServers as string[] | undefined) ?? [];
  // MOE_EVAL_GPU_LAYERS sets the default (as LLAMA_ARG_N_GPU_LAYERS does for llama.cpp's tools); with
  // RPC servers every layer goes to them
  const envLayers = process.env.MOE_EVAL_GPU_LAYERS === undefined ? (rpcServers.length ? -1 : 0) : Number(process.env.MOE_EVAL_GPU_LAYERS);
  const gpuLayers = integer(o.gpuLayers ?? envLayers, o.gpuLayers === undefined ? 'MOE_EVAL_GPU_LAYERS' : 'gpuLayers', -1, 100000);
  const useMmap = optionalBoolean(o.useMmap, 'useMmap') ?? true;
  const onProgress = optionalFunction<(p: number) => void>(o.onProgress, 'onProgress');
  const signal = optionalSignal(o.signal, 'signal');
  if (o.kvOverrides !== undefined && !Array.isArray(o.kvOverrides)) throw new TypeError(expected('an array', 'kvOverrides', o.kvOverrides));
  const kvOverrides = ((o.kvOverrides as unknown[] | undefined) ?? []).map(validateKv);
  if (signal?.aborted) throw toAbortReason(signal);
  const abs = resolve(path);
  await checkModelFile(abs);
  if (signal?.aborted) throw toAbortReason(signal);
  const nativeModel = new (native().Model)(abs, { gpuLayers, useMmap, kvOverrides, rpcServers });
  return Model.load(abs, nativeModel, { onProgress, signal, gpuLayers, useMmap, kvApplied: kvOverrides.map(formatKvOverride) });
}
