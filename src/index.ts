/** moe-eval: runtime MoE routing and llama.cpp-exact perplexity for Node. */
import { applyLogEnv } from './log.js';

export { loadModel, Model, parseKvOverride, type LoadModelOptions, type KvOverride } from './model.js';
export { Context, type ContextOptions, type ResolvedContextOptions } from './context.js';
export { evaluate, combineChunks, type ChunkTotals, type EvaluateOptions, type EvaluateResult, type EvaluateProgress, type ChunkResult, type KldResult } from './evaluate.js';
export { resolveRouting, type Routing, type ResolvedRouting } from './routing.js';
export { formatPerLayer } from './routing-grammar.js';
export { scaleFactor, zipfPrior, expectedNormSquared, parseScaleRule, type Prior, type ScaleFactorOptions } from './scale.js';
export type { ModelInfo } from './model-info.js';
export type { ContextMemory } from './native.js';
export { RoutingProfile, DEFAULT_MIN_EXPERT_TOKENS, type ProfileData, type ProfileLayer, type ProfileCoverage } from './profile.js';
export { calibrate, type CalibrateOptions } from './calibrate.js';
export { pruneExperts, pruneMask, expertScores, expertsRemoved, PRUNE_CRITERIA, PRUNE_SCOPES, type PruneOptions, type PrunedRouting, type PruneCriterion, type PruneScope } from './prune.js';
export { pruneSweep, type PruneSweepOptions, type PruneSweepResult, type PruneRow } from './prune-sweep.js';
export { quantizeModel, quantTypeNeedsImatrix, QUANT_TYPES, TENSOR_TYPES, type QuantizeOptions, type TensorTypeOverride } from './quantize.js';
export { parseRecipe, type QuantizeRecipe, type ImatrixSource } from './recipe.js';
export { imatrix, readImatrix, writeImatrix, imatrixCoverage, DEFAULT_COVERAGE_THRESHOLD, type ImatrixOptions, type ImatrixResult, type ImatrixData, type ImatrixEntry, type ImatrixCoverage, type ExpertCoverage } from './imatrix.js';
export { readKldBaseHeader, type KldBaseHeader } from './reference.js';
export { readGgufInfo, type GgufInfo } from './gguf-info.js';
export { sweep, gridPoints, type SweepOptions, type SweepGrid, type SweepRow, type SweepResult } from './sweep.js';
export { scan, readScan, defaultChanges, type ScanOptions, type ScanResult, type ScanCell, type ScanChange, type ScanModelFacts } from './scan.js';
export { allocate, type AllocateOptions, type Allocation } from './allocate.js';
export type { HalvingDrop, HalvingRound, HalvingSummary } from './sweep-halving.js';
export { bench, testName, benchStatistics, type BenchOptions, type BenchTest, type BenchKldOptions, type BenchProgress, type BenchRow, type BenchResult } from './bench.js';
export { formatBench, benchPrinter, BENCH_FORMATS, BENCH_FIELDS, type BenchFormat, type BenchPrinter, type BenchPrintOptions } from './bench-output.js';
export { compare, type CompareOptions, type CompareEvent, type CompareResult } from './compare.js';
export { writeReport, type ReportData, type ResultRow } from './report/index.js';
export { exportModel, type ExportOptions } from './export.js';
export {
  multipleChoice,
  compareAccuracy,
  writeMultipleChoiceFile,
  type TaskKind,
  type MultipleChoiceOptions,
  type MultipleChoiceResult,
  type MultipleChoiceTaskResult,
  type MultipleChoiceReference,
  type MultipleChoiceProgress,
  type AccuracyComparison,
} from './multiple-choice.js';
export { createRandomModel, defaultVocabFile, type RandomModelSpec } from './fixtures.js';
export { setLogger, type LogLevel } from './log.js';
export { devices, systemInfo } from './system.js';
export type { Device } from './system.js';
export { startRpcServer, type RpcServerOptions } from './rpc.js';
export { MoeEvalError, DisposedError, type ErrorCode } from './errors.js';

applyLogEnv();
