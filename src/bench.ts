/**
 * bench(): prompt-processing and generation speed per routing, by llama-bench's method and in its
 * columns, with the routing's quality (mean KLD, same top) on a text beside it.
 *
 * The method is llama-bench's (tools/llama-bench/llama-bench.cpp): per test, a warm-up run (the whole
 * prompt; one generated token), then `repetitions` runs that each clear the KV cache, decode n_depth
 * tokens untimed, and time n_prompt random tokens decoded in batches of n_batch plus n_gen single-token
 * decodes. Speed per run is (n_prompt + n_gen) / time; avg_ts and stddev_ts are the mean and sample
 * standard deviation of those, avg_ns and stddev_ns of the times (in llama-bench's integer arithmetic).
 * The context of a test holds n_prompt + n_gen + n_depth tokens, as llama-bench's does. The timed loop
 * is native/BenchWorker.cpp; rows are printed by src/bench-output.ts.
 *
 * Routing columns come after llama-bench's: the routing's label and its flags' values, k̄ (experts
 * computed per token and MoE layer during the timed runs: counted where dropped experts are skipped
 * (-ser on the CPU, vendor/patches/0004), else the routing's expert count), and with `kld` the mean KLD
 * and same-top fraction of the routing against the model's default routing on that text
 * (llama-perplexity's --kl-divergence statistics).
 */
import { checkCacheTypes, createContextFor, resolveCacheType, resolveFlashAttention, type Context, type FlashAttention, type KvCacheType } from './context.js';

/** llama.cpp's llama_flash_attn_type, as llama-bench prints it. */
const FLASH_ATTN_TYPE: Record<FlashAttention, number> = { auto: -1, off: 0, on: 1 };
import { fromNative, toAbortReason } from './errors.js';
import { evaluate, inputTokens } from './evaluate.js';
import { Model } from './model.js';
import type { NativeBenchResult } from './native.js';
import { defaultThreads } from './native.js';
import { formatPerLayer } from './routing-grammar.js';
import { type ResolvedRouting, type Routing, maxExperts, resolveRouting, validateRoutingShape } from './routing.js';
import { checkOptionNames, expected, integer, optionalBoolean, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface BenchTest {
  /** Prompt tokens (llama-bench -p); 0 for a generation-only test. */
  nPrompt: number;
  /** Generated tokens (llama-bench -n); 0 for a prompt-only test. */
  nGen: number;
  /** Tokens already in the KV cache before the timed part (llama-bench -d). Default 0. */
  nDepth?: number;
}

export interface BenchKldOptions {
  text?: string;
  tokens?: Int32Array | readonly number[];
  file?: string;
  /** Chunk size of the KLD evaluation. Default 512. */
  contextSize?: number;
  /** At most this many chunks. */
  chunks?: number;
}

export interface BenchProgress {
  phase: 'speed' | 'kld';
  /** 1-based index of the routing, and how many there are. */
  routing: number;
  routings: number;
  label: string;
  /** The llama-bench test name (pp512, tg128, pp512+tg128 …); absent in the kld phase. */
  test?: string;
  repetitionsDone?: number;
  repetitions?: number;
}

export interface BenchOptions {
  /** Routings to measure, one row per routing and test. Default: the model's own. */
  routings?: readonly (Routing | undefined)[];
  /** Default: llama-bench's: pp512 and tg128. */
  tests?: readonly BenchTest[];
  /** llama-bench -r. Default 5. */
  repetitions?: number;
  /** llama-bench -t. Default: llama.cpp's rule (see defaultThreads()). */
  threads?: number;
  /** llama-bench -b. Default 2048. */
  batchSize?: number;
  /** llama-bench -ub. Default 512. */
  ubatchSize?: number;
  /** llama-bench -fa: 'auto' (default), 'on' or 'off'. */
  flashAttention?: FlashAttention;
  /** llama-bench -ctk / -ctv. Default 'f16'. */
  cacheTypeK?: KvCacheType;
  cacheTypeV?: KvCacheType;
  /** llama-bench --no-warmup is warmup: false. Default true. */
  warmup?: boolean;
  /** Also measure each routing's mean KLD and same top against the default routing on this text. */
  kld?: BenchKldOptions;
  onProgress?: (p: BenchProgress) => void;
  signal?: AbortSignal;
}

/**
 * One llama-bench result row (its field names and types) plus the routing columns. Field order is
 * the output order (src/bench-output.ts).
 */
export interface BenchRow {
  build_commit: string;
  build_number: number;
  cpu_info: string;
  gpu_info: string;
  backends: string;
  model_filename: string;
  model_type: string;
  model_size: number;
  model_n_params: number;
  n_batch: number;
  n_ubatch: number;
  n_threads: number;
  cpu_mask: string;
  cpu_strict: boolean;
  poll: number;
  type_k: string;
  type_v: string;
  n_gpu_layers: number;
  n_cpu_moe: number;
  split_mode: string;
  main_gpu: number;
  no_kv_offload: boolean;
  flash_attn: number;
  devices: string;
  tensor_split: string;
  tensor_buft_overrides: string;
  load_mode: string;
  lazy_mode: string;
  embeddings: boolean;
  no_op_offload: number;
  no_host: boolean;
  fit_target: number;
  fit_min_ctx: number;
  n_prompt: number;
  n_gen: number;
  n_depth: number;
  test_time: string;
  avg_ns: number;
  stddev_ns: number;
  avg_ts: number;
  stddev_ts: number;
  samples_ns: number[];
  samples_ts: number[];
  /** The routing in the grammar of the routing flags ("default", "experts=3 expert-scale=uniform" …). */
  routing: string;
  experts: string;
  expert_scale: string;
  gate_scale: string;
  /** -ser Kmin,t; "" when off. */
  ser: string;
  /** Experts computed per token and MoE layer during the timed runs. */
  k_mean: number;
  kld_mean: number | null;
  same_top: number | null;
}

export interface BenchResult {
  rows: BenchRow[];
  /** What the markdown printer needs to choose its columns as llama-bench does. */
  settings: { threads: number; batchSize: number; ubatchSize: number; flashAttention: FlashAttention; cacheTypeK: KvCacheType; cacheTypeV: KvCacheType; threadsGiven: boolean; kld: boolean; backends: string };
}

const BENCH_OPTIONS = ['routings', 'tests', 'repetitions', 'threads', 'batchSize', 'ubatchSize', 'flashAttention', 'cacheTypeK', 'cacheTypeV', 'warmup', 'kld', 'onProgress', 'signal'] as const;
const KLD_OPTIONS = ['text', 'tokens', 'file', 'contextSize', 'chunks'] as const;

/** llama-bench's test name: pp512, tg128, pp512+tg128, with " @ d512" for a depth. */
export function testName(t: { nPrompt: number; nGen: number; nDepth?: number }): string {
  const base = t.nPrompt > 0 && t.nGen === 0 ? `pp${t.nPrompt}` : t.nGen > 0 && t.nPrompt === 0 ? `tg${t.nGen}` : `pp${t.nPrompt}+tg${t.nGen}`;
  return (t.nDepth ?? 0) > 0 ? `${base} @ d${t.nDepth}` : base;
}

/**
 * llama-bench's statistics of one test from its samples: avg_ns and stddev_ns in its integer
 * arithmetic, samples_ts = 1e9 · (n_prompt + n_gen) / ns, and their mean and sample standard deviation.
 */
export function benchStatistics(samplesNs: readonly number[], nTokens: number): Pick<BenchRow, 'avg_ns' | 'stddev_ns' | 'avg_ts' | 'stddev_ts' | 'samples_ts'> {
  const ns = u64Stats(samplesNs);
  const samplesTs = samplesNs.map((x) => (1e9 * nTokens) / x);
  const ts = f64Stats(samplesTs);
  return { avg_ns: ns.avg, stddev_ns: ns.stdev, avg_ts: ts.avg, stddev_ts: ts.stdev, samples_ts: samplesTs };
}

/** llama-bench's avg / stdev of uint64 samples: integer arithmetic, wrapping at 2^64. */
function u64Stats(samples: readonly number[]): { avg: number; stdev: number } {
  const u = (x: bigint) => BigInt.asUintN(64, x);
  const v = samples.map((x) => BigInt(Math.round(x)));
  const n = BigInt(v.length);
  if (v.length === 0) return { avg: 0, stdev: 0 };
  const mean = u(v.reduce((a, b) => u(a + b), 0n)) / n;
  if (v.length <= 1) return { avg: Number(mean), stdev: 0 };
  const sq = v.reduce((a, b) => u(a + u(b * b)), 0n);
  const inner = u(sq / (n - 1n) - u(u(u(mean * mean) * n) / (n - 1n)));
  return { avg: Number(mean), stdev: Math.trunc(Math.sqrt(Number(inner))) };
}

/** llama-bench's avg / stdev of doubles (sample standard deviation by its formula). */
function f64Stats(v: readonly number[]): { avg: number; stdev: number } {
  if (v.length === 0) return { avg: 0, stdev: 0 };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length <= 1) return { avg: mean, stdev: 0 };
  const sq = v.reduce((a, b) => a + b * b, 0);
  const n = v.length;
  return { avg: mean, stdev: Math.sqrt(sq / (n - 1) - (mean * mean * n) / (n - 1)) };
}

function validateTests(value: unknown): BenchTest[] {
  if (value === undefined) return [{ nPrompt: 512, nGen: 0 }, { nPrompt: 0, nGen: 128 }];
  if (!Array.isArray(value) || value.length === 0) throw new TypeError(expected('a non-empty array of { nPrompt, nGen, nDepth? }', 'tests', value));
  return value.map((t: unknown, i) => {
    const o = optionsObject(t, `tests[${i}]`);
    checkOptionNames(o, ['nPrompt', 'nGen', 'nDepth'], `tests[${i}]`);
    const nPrompt = integer(o.nPrompt ?? 0, `tests[${i}].nPrompt`, 0, 1 << 20);
    const nGen = integer(o.nGen ?? 0, `tests[${i}].nGen`, 0, 1 << 20);
    const nDepth = integer(o.nDepth ?? 0, `tests[${i}].nDepth`, 0, 1 << 20);
    if (nPrompt + nGen === 0) throw new RangeError(expected('nPrompt or nGen above 0', `tests[${i}]`, t));
    return { nPrompt, nGen, nDepth };
  });
}

/** The values of the routing flags, as columns. */
function routingColumns(r: ResolvedRouting, model: Model): Pick<BenchRow, 'routing' | 'experts' | 'expert_scale' | 'gate_scale' | 'ser'> {
  const info = model.info;
  return {
    routing: r.label,
    experts: r.isDefault || r.experts.length === 0 ? String(info.expertsUsed) : formatPerLayer(r.experts, info),
    expert_scale: r.expertScaleRule ?? (r.expertScale.length ? formatPerLayer(r.expertScale, info) : '1'),
    gate_scale: r.gateScale.length ? formatPerLayer(r.gateScale, info) : '1',
    ser: r.minWeightRatio === null ? '' : `${r.minExperts},${r.minWeightRatio}`,
  };
}

/** Experts per token over the MoE layers when nothing is skipped: the routing's counts (the model's by default). */
function staticExperts(r: ResolvedRouting, model: Model): number {
  const info = model.info;
  const layers = info.moeLayers.length ? info.moeLayers : [{ layer: 0, expertsUsed: info.expertsUsed }];
  const per = layers.map((l) => (r.experts.length ? r.experts[l.layer]! : l.expertsUsed));
  return per.reduce((a, b) => a + b, 0) / per.length;
}

export async function bench(model: Model, options: BenchOptions = {}): Promise<BenchResult> {
  if (!(model instanceof Model)) throw new TypeError(expected('a Model (from loadModel())', 'bench() model', model));
  const o = optionsObject(options, 'bench options');
  checkOptionNames(o, BENCH_OPTIONS, 'bench()');
  const tests = validateTests(o.tests);
  if (o.routings !== undefined && (!Array.isArray(o.routings) || o.routings.length === 0)) {
    throw new TypeError(expected('a non-empty array of routings', 'routings', o.routings));
  }
  const routingInputs = ((o.routings as (Routing | undefined)[] | undefined) ?? [undefined]).map((r, i) =>
    r === undefined ? undefined : validateRoutingShape(r, `routings[${i}]`),
  );
  const routings = routingInputs.map((r) => resolveRouting(r, model.info));
  const repetitions = o.repetitions === undefined ? 5 : integer(o.repetitions, 'repetitions', 1, 1 << 20);
  const threadsGiven = o.threads !== undefined;
  const threads = threadsGiven ? integer(o.threads, 'threads', 1, 1024) : defaultThreads();
  const batchSize = o.batchSize === undefined ? 2048 : integer(o.batchSize, 'batchSize', 1, 1 << 20);
  const ubatchSize = o.ubatchSize === undefined ? 512 : integer(o.ubatchSize, 'ubatchSize', 1, 1 << 20);
  const flashAttention = resolveFlashAttention(o.flashAttention, 'flashAttention');
  const cacheTypeK = resolveCacheType(o.cacheTypeK, 'cacheTypeK');
  const cacheTypeV = resolveCacheType(o.cacheTypeV, 'cacheTypeV');
  checkCacheTypes(flashAttention, cacheTypeV, 'bench()');
  const warmup = optionalBoolean(o.warmup, 'warmup') ?? true;
  const onProgress = optionalFunction<(p: BenchProgress) => void>(o.onProgress, 'onProgress');
  const signal = optionalSignal(o.signal, 'signal');
  let kld: Record<string, unknown> | undefined;
  let kldContextSize = 512;
  let kldChunks: number | undefined;
  if (o.kld !== undefined) {
    kld = optionsObject(o.kld, 'kld');
    checkOptionNames(kld, KLD_OPTIONS, 'bench() kld');
    kldContextSize = kld.contextSize === undefined ? 512 : integer(kld.contextSize, 'kld.contextSize', 8, 1 << 20);
    kldChunks = kld.chunks === undefined ? undefined : integer(kld.chunks, 'kld.chunks', 1, 2 ** 31 - 1);
  }
  if (signal?.aborted) throw toAbortReason(signal);

  const reserveExperts = Math.max(0, ...routings.map(maxExperts));
  const info = model.info;
  const rows: BenchRow[] = [];
  const rowRouting: number[] = []; // routing index of each row
  const contexts = new Map<number, Context>();
  // one context per test size (llama-bench's n_ctx = n_prompt + n_gen + n_depth), shared by the routings
  const contextFor = async (size: number): Promise<Context> => {
    let ctx = contexts.get(size);
    if (!ctx) {
      const batch = Math.min(batchSize, size);
      ctx = await createContextFor(model, { contextSize: size, batchSize: batch, ubatchSize: Math.min(ubatchSize, batch), threads, flashAttention, cacheTypeK, cacheTypeV }, { reserveExperts });
      contexts.set(size, ctx);
    }
    return ctx;
  };
  try {
    for (const [ri, routing] of routings.entries()) {
      for (const t of tests) {
        if (signal?.aborted) throw toAbortReason(signal);
        const size = Math.max(8, t.nPrompt + t.nGen + (t.nDepth ?? 0));
        const ctx = await contextFor(size);
        const testTime = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        const name = testName(t);
        ctx.setRouting(routingInputs[ri]);
        const raw: NativeBenchResult = await ctx.enqueue(async () => {
          const nativeCtx = ctx.nativeWithRouting();
          const onAbort = () => nativeCtx.abort();
          signal?.addEventListener('abort', onAbort, { once: true });
          try {
            return await nativeCtx.bench(
              { nPrompt: t.nPrompt, nGen: t.nGen, nDepth: t.nDepth ?? 0, repetitions, warmup },
              onProgress
                ? (p) => onProgress({ phase: 'speed', routing: ri + 1, routings: routings.length, label: routing.label, test: name, ...p })
                : undefined,
            );
          } catch (e) {
            throw fromNative(e, signal);
          } finally {
            signal?.removeEventListener('abort', onAbort);
          }
        });
        const stats = benchStatistics(raw.samplesNs, t.nPrompt + t.nGen);
        rowRouting.push(ri);
        rows.push({
          build_commit: raw.buildCommit,
          build_number: raw.buildNumber,
          cpu_info: raw.cpuInfo,
          gpu_info: raw.gpuInfo,
          backends: raw.backends,
          model_filename: model.path,
          model_type: info.description,
          model_size: info.sizeBytes,
          model_n_params: info.parameters,
          n_batch: batchSize,
          n_ubatch: ubatchSize,
          n_threads: threads,
          // the settings llama-bench has and moe-eval's contexts use with llama.cpp's defaults
          cpu_mask: '0x0',
          cpu_strict: false,
          poll: 50,
          type_k: cacheTypeK,
          type_v: cacheTypeV,
          n_gpu_layers: model.gpuLayers,
          n_cpu_moe: 0,
          split_mode: 'layer',
          main_gpu: 0,
          no_kv_offload: false,
          flash_attn: FLASH_ATTN_TYPE[flashAttention],
          devices: 'auto',
          tensor_split: '0.00',
          tensor_buft_overrides: 'none',
          load_mode: model.useMmap ? 'auto' : 'none',
          lazy_mode: 'auto',
          embeddings: false,
          no_op_offload: 0,
          no_host: false,
          fit_target: 0,
          fit_min_ctx: 0,
          n_prompt: t.nPrompt,
          n_gen: t.nGen,
          n_depth: t.nDepth ?? 0,
          test_time: testTime,
          avg_ns: stats.avg_ns,
          stddev_ns: stats.stddev_ns,
          avg_ts: stats.avg_ts,
          stddev_ts: stats.stddev_ts,
          samples_ns: raw.samplesNs,
          samples_ts: stats.samples_ts,
          ...routingColumns(routing, model),
          k_mean: raw.computedRows > 0 ? raw.computedExperts / raw.computedRows : staticExperts(routing, model),
          kld_mean: null,
          same_top: null,
        });
      }
    }
  } finally {
    for (const ctx of contexts.values()) await ctx.dispose();
  }

  if (kld) {
    const tokens = await inputTokens(model, kld, 'bench() kld');
    const ctxOptions = { contextSize: kldContextSize, batchSize: Math.max(kldContextSize, Math.min(batchSize, 4 * kldContextSize)), ubatchSize, threads, flashAttention, cacheTypeK, cacheTypeV };
    ctxOptions.batchSize -= ctxOptions.batchSize % kldContextSize;
    const qCtx = await createContextFor(model, ctxOptions, { reserveExperts });
    const refCtx = await createContextFor(model, ctxOptions);
    try {
      for (const [ri, routing] of routings.entries()) {
        if (signal?.aborted) throw toAbortReason(signal);
        onProgress?.({ phase: 'kld', routing: ri + 1, routings: routings.length, label: routing.label });
        const r = await evaluate(qCtx, { tokens, routing: routingInputs[ri] ?? {}, reference: refCtx, signal, ...(kldChunks ? { chunks: kldChunks } : {}) });
        rows.forEach((row, i) => {
          if (rowRouting[i] === ri) {
            row.kld_mean = r.kld!.kldMean;
            row.same_top = r.kld!.sameTop;
          }
        });
      }
    } finally {
      await qCtx.dispose();
      await refCtx.dispose();
    }
  }
  return { rows, settings: { threads, batchSize, ubatchSize, flashAttention, cacheTypeK, cacheTypeV, threadsGiven, kld: kld !== undefined, backends: rows[0]?.backends ?? 'CPU' } };
}
