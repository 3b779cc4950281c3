/**
 * Loads the compiled addon (build/Release/moe_eval.node) and types its surface. Everything here takes
 * already-validated plain values; validation lives in the modules that call it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MoeEvalError } from './errors.js';

export interface NativeLayerFacts {
  layer: number;
  /** N in this layer. */
  expertCount: number;
  expertsUsed: number;
  gating: 'softmax' | 'sigmoid' | 'softmax-over-chosen' | 'sqrt-softplus' | 'none';
  renormalized: boolean;
  expertWeightsScale: number;
  selectionBias: boolean;
  /** Nodes in llama.cpp's graph when this layer's experts were aggregated, and the graph's capacity. */
  graphNodes: number;
  graphSize: number;
}

export interface NativeModelInfo {
  architecture: string;
  name: string;
  description: string;
  layers: number;
  embeddingLength: number;
  vocabSize: number;
  trainingContextLength: number;
  fileType: number;
  sizeBytes: number;
  parameters: number;
  tensors: number;
  addBos: boolean;
  addEos: boolean;
  bosToken: number;
  vocabType: number;
  expertCount: number;
  expertsUsed: number;
  sharedExperts: number;
  expertGroups: number;
  expertGroupsUsed: number;
  denseLeadingLayers: number;
  moeLayers: NativeLayerFacts[];
  /** The device (a name from devices()) of each repeating layer and of the output layer. */
  placement: { layers: string[]; output: string };
}

/** A ggml backend device this build can compute on (native/System.cpp). */
export interface NativeDevice {
  /** ggml's device name, e.g. 'CPU', 'Vulkan0', 'CUDA0', 'RPC0[host:port]'. */
  name: string;
  description: string;
  /** The backend that registered it, e.g. 'CPU', 'Vulkan', 'CUDA', 'RPC'. */
  backend: string;
  type: 'cpu' | 'gpu' | 'igpu' | 'accel' | 'unknown';
  memoryTotal: number;
  memoryFree: number;
}

export interface NativeLayerRouting {
  experts: number; // 0 = model default
  expertScale: number;
  gateScale: number;
  serMin: number; // 0 = off
  serRatio: number;
  /** 0 = off */
  topP: number;
  /** expert ids that do not exist for this context (ascending) */
  mask: number[];
  /** calibration only: compute `experts`, mix the first mixTop */
  mixTop?: number;
}

export interface NativeKld {
  perplexity: number; perplexityUnc: number; basePerplexity: number; basePerplexityUnc: number;
  correlation: number; logRatio: number; logRatioUnc: number; ratio: number; ratioUnc: number; difference: number; differenceUnc: number;
  kldMean: number; kldUnc: number; kldMax: number; kld999: number; kld99: number; kld95: number; kld90: number; kldMedian: number;
  kld10: number; kld5: number; kld1: number; kld01: number; kldMin: number;
  dpMean: number; dpUnc: number; dpMax: number; dp999: number; dp99: number; dp95: number; dp90: number; dp75: number; dpMedian: number;
  dp25: number; dp10: number; dp5: number; dp1: number; dp01: number; dpMin: number; dpRms: number; dpRmsUnc: number;
  sameTop: number; sameTopUnc: number; count: number;
  /** Against a compact base only: the mean of the per-token lower bounds (docs/kld-compact.md); kldMean adds the tail estimate to it. */
  kldLowerBound?: number;
}

/** Computed in native/metrics/Perplexity.cpp (llama-perplexity's formulas): the one place they live. */
export interface NativeEvaluation {
  perplexity: number;
  /** llama-perplexity's "±". */
  stderr: number;
  meanNll: number;
  count: number;
  chunkCount: number;
  tokensDecoded: number;
  elapsedMs: number;
  scoringMs: number;
  /** k̄ per layer, measured from the graph (-1 where a layer has no experts). */
  expertsPerLayer: number[];
  chunks: { index: number; meanNll: number; perplexity: number; count: number; sumNll: number; sumNll2: number; sumKld?: number; sumKld2?: number; sameTop?: number }[];
  kld?: NativeKld;
  baseWriterPerplexity?: number;
}

export interface NativeEvaluateOptions {
  chunkSize: number;
  chunks?: number;
  firstChunk?: number;
  baseFile?: string;
  baseDataOffset?: number;
  /** baseFile is a compact base of this K (0: llama.cpp's format) with this many tail samples. */
  baseTopK?: number;
  baseTailSamples?: number;
  writeBaseFile?: string;
  /** Write the base in the compact format with this K. */
  writeBaseTopK?: number;
  reference?: NativeContext;
}

export interface NativeModel {
  load(onProgress?: (p: number) => void): Promise<void>;
  abortLoad(): void;
  info(): NativeModelInfo;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Promise<Int32Array>;
  dispose(): void;
}

export interface NativeContextOptions {
  /** KV cache size in tokens: chunk size × sequences per batch (llama.cpp's n_ctx). */
  kvSize: number;
  batchSize: number;
  ubatchSize: number;
  sequences: number;
  threads: number;
  /** llama.cpp's flash_attn_type: 'auto' | 'on' | 'off'. */
  flashAttention: 'auto' | 'on' | 'off';
  /** llama.cpp's type_k / type_v, by ggml type name ('f16', 'q8_0', …). */
  cacheTypeK: string;
  cacheTypeV: string;
  reserveExperts: number;
  collectRoutingStats?: boolean;
  collectImatrix?: boolean;
  /** One KV cache for all sequences (llama.cpp's kv_unified). */
  unifiedKv?: boolean;
}

/** Per-layer sums of a calibration pass (native/routing/RoutingStats.cpp). */
export interface NativeLayerStats {
  layer: number;
  experts: number;
  computed: number;
  tokens: number;
  probByRank: number[];
  selected: number[];
  entropy: number;
  norm2: number[];
  dot: number;
  self: number;
  pairs: number;
  singles: number;
  /** Per expert, summed over the tokens routed to it (count: `selected`): its mixing weight, ‖its output‖, and their product. */
  weight: number[];
  norm: number[];
  reap: number[];
}

/** One tensor of an importance matrix (native/metrics/Imatrix.h): Σx² per column per matrix, and rows summed. */
export interface NativeImatrixEntry {
  name: string;
  values: Float32Array;
  counts: Float64Array;
}

/** An importance matrix file's content (native/metrics/ImatrixFile.h). */
export interface NativeImatrixFile {
  entries: NativeImatrixEntry[];
  datasets: string[];
  chunkCount: number;
  chunkSize: number;
  legacy: boolean;
  hasMetadata: boolean;
}

export interface NativeQuantizeOptions {
  ftype: number;
  threads: number;
  allowRequantize?: boolean;
  pure?: boolean;
  onlyCopy?: boolean;
  leaveOutputTensor?: boolean;
  outputTensorType?: number;
  tokenEmbeddingType?: number;
  tensorTypes?: { pattern: string; type: number }[];
  imatrix?: string;
  imatrixName?: string;
  includeWeights?: string[];
  excludeWeights?: string[];
}

export interface NativeContext {
  init(): Promise<void>;
  /** [] = the model's own routing through the hook; null = hook switched off (llama.cpp's own graph). */
  setRouting(layers: NativeLayerRouting[] | null): void;
  logits(tokens: Int32Array): Promise<Float32Array>;
  evaluate(
    tokens: Int32Array,
    options: NativeEvaluateOptions,
    onProgress?: (p: { chunksDone: number; chunksTotal: number; perplexity: number }) => void,
  ): Promise<NativeEvaluation>;
  /** native/MultipleChoiceWorker.cpp: llama-perplexity's multiple-choice decoding loop. */
  multipleChoice(
    tasks: import('./multiple-choice/common.js').NativeTask[],
    options: { logitsForLast: boolean; maxSequences: number },
    onProgress?: (p: { tasksDone: number; tasksTotal: number }) => void,
  ): Promise<{ tasks: import('./multiple-choice/common.js').NativeTaskScores[]; tokensDecoded: number; elapsedMs: number }>;
  /** One llama-bench test under the context's routing (native/BenchWorker.cpp). */
  bench(
    spec: { nPrompt: number; nGen: number; nDepth: number; repetitions: number; warmup: boolean },
    onProgress?: (p: { repetitionsDone: number; repetitions: number }) => void,
  ): Promise<NativeBenchResult>;
  memory(): ContextMemory;
  /** Calibration contexts only (collectRoutingStats): the sums since the last call. */
  takeRoutingStats(): NativeLayerStats[];
  /** Importance-matrix contexts only (collectImatrix): the sums since the last call, sorted by name. */
  takeImatrix(): NativeImatrixEntry[];
  abort(): void;
  dispose(): void;
}

export interface NativeBenchResult {
  /** Wall time of each repetition (ns), as llama-bench's samples_ns. */
  samplesNs: number[];
  /** (token, MoE layer) pairs where dropped experts were skipped, and the experts computed in them (0, 0: none skipped). */
  computedRows: number;
  computedExperts: number;
  /** llama-bench's cpu_info, gpu_info, backends, build_commit, build_number. */
  cpuInfo: string;
  gpuInfo: string;
  backends: string;
  buildCommit: string;
  buildNumber: number;
}

/** llama.cpp's accounting of a context's memory in bytes (its exit-time "memory breakdown"), summed over buffer types. */
export interface ContextMemory {
  /** Weights this context uses (shared with every other context of the model: mapped once). */
  model: number;
  /** KV cache. */
  context: number;
  /** Compute buffers reserved for the graph. */
  compute: number;
  /** The same per buffer type (e.g. "CPU", "CUDA0", "CPU_Mapped"). */
  buffers: { bufferType: string; model: number; context: number; compute: number }[];
}

export interface NativeRandomModelSpec {
  arch: string;
  vocabFile?: string;
  noVocab?: number;
  layers?: number;
  embeddingLength?: number;
  heads?: number;
  headsKv?: number;
  feedForwardLength?: number;
  expertCount?: number;
  expertsUsed?: number;
  sharedExperts?: number;
  expertGroups?: number;
  expertGroupsUsed?: number;
  denseLeadingLayers?: number;
  contextLength?: number;
  seed?: number;
  gating?: number;
  renormalize?: boolean;
  expertWeightsScale?: number;
  routerStd?: number;
}

export interface NativeGgufInfo {
  version: number;
  tensors: number;
  parameters: number;
  tensorBytes: number;
  kv: Record<string, { type: string; value?: number | boolean | string; itemType?: string; length?: number }>;
}

export interface NativeAddon {
  Model: new (path: string, options: { gpuLayers?: number; useMmap?: boolean; kvOverrides?: { key: string; type: string; value: unknown }[]; rpcServers?: string[] }) => NativeModel;
  startRpcServer(endpoint: string, threads: number): Promise<void>;
  Context: new (model: NativeModel, options: NativeContextOptions) => NativeContext;
  setLogger(fn: ((level: string, text: string) => void) | null, level: string): void;
  systemInfo(): string;
  /** llama.cpp's default thread count: physical cores (performance cores on a hybrid CPU). */
  defaultThreads(): number;
  /** GPU devices in this build (0 for a CPU-only build). */
  gpuDeviceCount(): number;
  /** llama-perplexity's final numbers from sums of per-chunk statistics (native/metrics/Combine.cpp). */
  estimateFromSums(sums: { nll: number; nll2: number; count: number; kld?: { sum: number; sum2: number; sameTop: number } }): {
    perplexity: number;
    stderr: number;
    nll: number;
    kldMean?: number;
    kldUnc?: number;
    sameTop?: number;
  };
  devices(): NativeDevice[];
  createRandomModel(path: string, spec: NativeRandomModelSpec): Promise<void>;
  quantizeModel(src: string, dst: string, options: NativeQuantizeOptions, onProgress?: (p: number) => void): Promise<void>;
  readImatrix(path: string): Promise<NativeImatrixFile>;
  writeImatrix(path: string, data: { entries: NativeImatrixEntry[]; datasets: string[]; chunkCount: number; chunkSize: number; legacy?: boolean }): Promise<void>;
  readGgufInfo(path: string): Promise<NativeGgufInfo>;
  rewriteGguf(
    src: string,
    dst: string,
    spec: {
      kv?: { key: string; type: 'u32' | 'i32' | 'f32' | 'bool' | 'str' | 'u32[]'; value: unknown }[];
      scale?: { name: string; factor: number; optional?: boolean }[];
      /** Per MoE layer, the experts to remove from every per-expert tensor of that layer (N = expertCount). */
      removeExperts?: { expertCount: number; layers: { layer: number; ids: number[] }[] };
    },
    onProgress?: (p: number) => void,
  ): Promise<void>;
}

export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

let addon: NativeAddon | undefined;
let threads: number | undefined;

/** The thread count llama.cpp's tools default to on this machine (common_cpu_get_num_math). */
export function defaultThreads(): number {
  threads ??= native().defaultThreads();
  return threads;
}

export function native(): NativeAddon {
  if (addon) return addon;
  const file = process.env.MOE_EVAL_ADDON ?? join(packageRoot, 'build', 'Release', 'moe_eval.node');
  if (!existsSync(file)) {
    throw new MoeEvalError('ERR_NATIVE', `The moe-eval addon is not built (${file} is missing): run \`npm run build:native\``);
  }
  addon = createRequire(import.meta.url)(file) as NativeAddon;
  return addon;
}
