/**
 * multipleChoice(): HellaSwag, Winogrande and generic multiple-choice accuracy by llama-perplexity's
 * method and numbers (--hellaswag, --winogrande, --multiple-choice), under any routing, with flips and a
 * paired test against a reference. File formats and scoring rules: src/multiple-choice/*.ts; the decoding
 * loop: native/MultipleChoiceWorker.cpp; the statistics: src/multiple-choice/stats.ts.
 */
import { readFile } from 'node:fs/promises';

import { Context, CONTEXT_OPTIONS, contextOptionsOf, type ContextSettings, refuseContextChanges, type FlashAttention, type KvCacheType, resolveContextOptions, type ResolvedContextOptions } from './context.js';
import { MoeEvalError, fromNative, toAbortReason } from './errors.js';
import { Model } from './model.js';
import { type BinaryTask, parseBinary, prepareBinary } from './multiple-choice/binary.js';
import { FORMAT_LIMITS, type ScoredTask, type TaskKind, where } from './multiple-choice/common.js';
import { type HellaswagTask, parseHellaswag, prepareHellaswag } from './multiple-choice/hellaswag.js';
import type { PreparedTask } from './multiple-choice/prepared.js';
import { type AccuracyStats, type Flips, accuracyStats, flips, mcnemarExact } from './multiple-choice/stats.js';
import { type WinograndeTask, parseWinogrande, prepareWinogrande } from './multiple-choice/winogrande.js';
import { type ResolvedRouting, type Routing, resolveRouting } from './routing.js';
import { checkOptionNames, expected, integer, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export type { TaskKind } from './multiple-choice/common.js';
export { writeBinary as writeMultipleChoiceFile } from './multiple-choice/binary.js';

export interface MultipleChoiceProgress {
  /** 'reference' while the reference is scored (after the target). */
  run: 'target' | 'reference';
  tasksDone: number;
  tasksTotal: number;
}

export interface MultipleChoiceOptions extends ContextSettings {
  task: TaskKind;
  /** The task file (exactly one of file, text, data). */
  file?: string;
  /** The task file's content (HellaSwag, Winogrande). */
  text?: string;
  /** The task file's bytes (any format; the binary multiple-choice format needs this or file). */
  data?: Uint8Array;
  /**
   * Tasks to score (llama-perplexity's --hellaswag-tasks, --winogrande-tasks, --multiple-choice-tasks).
   * HellaSwag: default 400, always drawn at random; Winogrande and multiple choice: default all, in
   * file order; fewer than the file holds are drawn at random (llama-perplexity's generator and seed).
   */
  tasks?: number;
  routing?: Routing;
  /**
   * What to count flips against: another Model (its default routing), a Context (its model and routing),
   * or a routing of the same model.
   */
  reference?: Model | Context | Routing;
  /** llama-perplexity's -c: the KV cache holds parallel × contextSize tokens. Default 512. */
  contextSize?: number;
  /** llama-perplexity's -np: sequences per decode, at least 4 (as llama-perplexity enforces). Default 4. */
  parallel?: number;
  onProgress?: (p: MultipleChoiceProgress) => void;
  signal?: AbortSignal;
}

export interface MultipleChoiceTaskResult {
  /** 0-based position of the task in the file. */
  index: number;
  /** The task's first line (HellaSwag, Winogrande). */
  line?: number;
  /** Byte offset of the task's record (binary multiple choice). */
  offset?: number;
  /** The answer chosen (0-based). */
  chosen: number;
  correct: boolean;
  /** Each answer's score: its mean log-probability per scored token. */
  scores: number[];
}

/** A run compared with a reference run on the same tasks (compareAccuracy()). */
export interface AccuracyComparison {
  flips: Flips;
  /** accuracy − reference accuracy, in percentage points. */
  difference: number;
  /** Exact two-sided McNemar test on the flips (the chance of a difference at least this large if both were equally accurate). */
  pValue: number;
}

export interface MultipleChoiceReference extends AccuracyStats, AccuracyComparison {
  routing: ResolvedRouting;
  model: { path: string };
  perTask: MultipleChoiceTaskResult[];
}

export interface MultipleChoiceResult extends AccuracyStats {
  task: TaskKind;
  /** Tasks the file holds (Winogrande: without a header line). */
  tasksInFile: number;
  /** Accuracy of answering at random, in percent: 100 · tasks / answers (llama-perplexity's "Random chance" for multiple choice). */
  chance: number;
  /** Winogrande: the first line was not a task (a header) and was skipped. */
  skippedHeader?: boolean;
  perTask: MultipleChoiceTaskResult[];
  routing: ResolvedRouting;
  model: { path: string; architecture: string; fileType: string };
  contextSize: number;
  batchSize: number;
  ubatchSize: number;
  threads: number;
  flashAttention: FlashAttention;
  cacheTypeK: KvCacheType;
  cacheTypeV: KvCacheType;
  parallel: number;
  elapsedMs: number;
  tokensPerSecond: number;
  reference?: MultipleChoiceReference;
}

const OPTIONS = ['task', 'file', 'text', 'data', 'tasks', 'reference', 'parallel', 'onProgress', 'signal', ...CONTEXT_OPTIONS] as const;
const KINDS: readonly TaskKind[] = ['hellaswag', 'winogrande', 'multiple-choice'];

type ParsedTask = HellaswagTask | WinograndeTask | BinaryTask;

interface TaskSet {
  kind: TaskKind;
  name: string;
  available: number;
  selected: ParsedTask[];
  skippedHeader?: boolean;
}

/** Reads and parses a task file as llama-perplexity would, with its task selection. @internal */
export async function loadTaskSet(kind: TaskKind, o: Record<string, unknown>, tasks: number): Promise<TaskSet> {
  const given = (['file', 'text', 'data'] as const).filter((k) => o[k] !== undefined);
  if (given.length !== 1) throw new TypeError(`Expected exactly one of file, text or data for multipleChoice() but received ${given.length ? given.join(', ') : 'none'}`);
  let bytes: Uint8Array;
  let name: string;
  if (o.file !== undefined) {
    if (typeof o.file !== 'string' || o.file === '') throw new TypeError(expected('a file path', 'file', o.file));
    try {
      bytes = await readFile(o.file);
    } catch (e) {
      throw new MoeEvalError('ERR_FILE', `Cannot read task file ${o.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    name = o.file;
  } else if (o.text !== undefined) {
    if (typeof o.text !== 'string') throw new TypeError(expected('a string', 'text', o.text));
    if (kind === 'multiple-choice') throw new TypeError('Expected file or data (bytes) for the binary multiple-choice format but received text');
    bytes = new TextEncoder().encode(o.text);
    name = 'text';
  } else {
    if (!(o.data instanceof Uint8Array)) throw new TypeError(expected('a Uint8Array', 'data', o.data));
    bytes = o.data;
    name = 'data';
  }
  if (kind === 'hellaswag') return { kind, name, ...parseHellaswag(bytes, name, tasks) };
  if (kind === 'winogrande') return { kind, name, ...parseWinogrande(bytes, name, tasks) };
  return { kind, name, ...parseBinary(bytes, name, tasks) };
}

function prepare(set: TaskSet, t: ParsedTask, tokenize: (s: string) => Promise<Int32Array>): Promise<PreparedTask> {
  if (set.kind === 'hellaswag') return prepareHellaswag(t as HellaswagTask, tokenize, set.name);
  if (set.kind === 'winogrande') return prepareWinogrande(t as WinograndeTask, tokenize, set.name);
  return prepareBinary(t as BinaryTask, tokenize, set.name);
}

interface Sizes extends ResolvedContextOptions {
  parallel: number;
}

interface RunResult {
  perTask: MultipleChoiceTaskResult[];
  answers: number;
  tokensDecoded: number;
  elapsedMs: number;
}

/** Tokenizes the tasks for `model`, decodes them in a context of llama-perplexity's layout, scores them. */
async function scoreTasks(
  model: Model,
  routing: ResolvedRouting,
  set: TaskSet,
  sizes: Sizes,
  run: MultipleChoiceProgress['run'],
  onProgress: ((p: MultipleChoiceProgress) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<RunResult> {
  const limits = FORMAT_LIMITS[set.kind];
  const maxSequences = Math.min(limits.maxSequences, sizes.parallel);
  const kvSize = sizes.parallel * sizes.contextSize;
  const tokenize = (s: string) => model.tokenize(s);
  const prepared: PreparedTask[] = [];
  // tokenized a window at a time (the tokenizer runs on libuv's threads); errors reported in task order
  const WINDOW = 32;
  for (let w = 0; w < set.selected.length; w += WINDOW) {
    if (signal?.aborted) throw toAbortReason(signal);
    const window = set.selected.slice(w, w + WINDOW);
    const settled = await Promise.allSettled(window.map((t) => prepare(set, t, tokenize)));
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    prepared.push(...settled.map((s) => (s as PromiseFulfilledResult<PreparedTask>).value));
  }
  for (const p of prepared) {
    const t = p.source;
    if (p.native.seqs.length > maxSequences) {
      throw new MoeEvalError('ERR_TASK_TOO_LONG', `${set.name}: ${where(t)} has ${p.native.seqs.length} answers; a decode holds ${maxSequences} sequences (raise parallel, llama-perplexity's -np, to at least ${p.native.seqs.length})`);
    }
    if (p.required > kvSize) {
      throw new MoeEvalError('ERR_TASK_TOO_LONG', `${set.name}: ${where(t)} needs ${p.required} tokens but the context holds ${kvSize} (parallel ${sizes.parallel} × contextSize ${sizes.contextSize}); llama-perplexity stops at such a task too`);
    }
  }
  const ctx = await model.createContextWith(
    contextOptionsOf(sizes),
    { routing, parallel: sizes.parallel },
  );
  try {
    const raw = await ctx.enqueue(async () => {
      if (signal?.aborted) throw toAbortReason(signal);
      const native = ctx.nativeWithRouting();
      const onAbort = () => native.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      let settled = false;
      let lastDone = 0;
      const progress = onProgress
        ? (p: { tasksDone: number; tasksTotal: number }) => {
            if (settled || p.tasksDone <= lastDone) return;
            lastDone = p.tasksDone;
            onProgress({ run, ...p });
          }
        : undefined;
      try {
        const r = await native.multipleChoice(prepared.map((p) => p.native), { logitsForLast: limits.logitsForLast, maxSequences }, progress);
        if (progress && lastDone < prepared.length) progress({ tasksDone: prepared.length, tasksTotal: prepared.length });
        return r;
      } catch (e) {
        throw fromNative(e, signal);
      } finally {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
      }
    });
    const perTask = prepared.map((p, i) => {
      const s: ScoredTask = p.score(raw.tasks[i]!);
      return { ...p.source, chosen: s.chosen, correct: s.correct, scores: s.scores };
    });
    return { perTask, answers: prepared.reduce((n, p) => n + p.native.seqs.length, 0), tokensDecoded: raw.tokensDecoded, elapsedMs: raw.elapsedMs };
  } finally {
    await ctx.dispose();
  }
}

export async function multipleChoice(target: Model | Context, options: MultipleChoiceOptions): Promise<MultipleChoiceResult> {
  if (!(target instanceof Model) && !(target instanceof Context)) throw new TypeError(expected('a Model or a Context', 'multipleChoice() target', target));
  const o = optionsObject(options, 'multipleChoice options');
  checkOptionNames(o, OPTIONS, 'multipleChoice()');
  if (!KINDS.includes(o.task as TaskKind)) throw new TypeError(expected(`one of ${KINDS.map((k) => `'${k}'`).join(', ')}`, 'task', o.task));
  const kind = o.task as TaskKind;
  const tasks = o.tasks === undefined ? FORMAT_LIMITS[kind].defaultTasks : integer(o.tasks, 'tasks', 1, 2 ** 32 - 1);
  const signal = optionalSignal(o.signal, 'signal');
  const onProgress = optionalFunction<(p: MultipleChoiceProgress) => void>(o.onProgress, 'onProgress');
  const parallel = Math.max(4, o.parallel === undefined ? 1 : integer(o.parallel, 'parallel', 1, 256));
  if (target instanceof Context) refuseContextChanges(target, o);
  const resolved = target instanceof Context ? target.options : resolveContextOptions(o, 'multipleChoice', false);
  const sizes: Sizes = { ...resolved, parallel };
  const model = target instanceof Context ? target.model : target;
  const routingOption = o.routing === undefined ? undefined : resolveRouting(o.routing as Routing, model.info);

  const ref = o.reference;
  let refModel: Model | undefined;
  let refRouting: ResolvedRouting | undefined;
  if (ref instanceof Model) {
    refModel = ref;
    refRouting = resolveRouting(undefined, ref.info);
  } else if (ref instanceof Context) {
    if (ref === target) throw new TypeError('A context cannot be its own reference; pass another context, a model or a routing');
    refModel = ref.model;
    refRouting = ref.routing;
  } else if (ref !== undefined) {
    if (ref === null || typeof ref !== 'object' || Array.isArray(ref)) throw new TypeError(expected('a Model, a Context or a routing', 'reference', ref));
    refModel = model;
    refRouting = resolveRouting(ref as Routing, model.info);
  }
  if (signal?.aborted) throw toAbortReason(signal);
  const set = await loadTaskSet(kind, o, tasks);

  const go = async (): Promise<MultipleChoiceResult> => {
    const routing = routingOption ?? (target instanceof Context ? target.routing : resolveRouting(undefined, model.info));
    const r = await scoreTasks(model, routing, set, sizes, 'target', onProgress, signal);
    const stats = accuracyStats(r.perTask.filter((t) => t.correct).length, r.perTask.length);
    const info = model.info;
    const result: MultipleChoiceResult = {
      task: kind,
      tasksInFile: set.available,
      ...stats,
      chance: (100 * r.perTask.length) / r.answers,
      ...(set.skippedHeader ? { skippedHeader: true } : {}),
      perTask: r.perTask,
      routing,
      model: { path: info.path, architecture: info.architecture, fileType: info.fileType },
      ...contextOptionsOf(sizes),
      parallel: sizes.parallel,
      elapsedMs: r.elapsedMs,
      tokensPerSecond: r.elapsedMs > 0 ? (r.tokensDecoded * 1000) / r.elapsedMs : 0,
    };
    if (refModel && refRouting) {
      const rr = await scoreTasks(refModel, refRouting, set, sizes, 'reference', onProgress, signal);
      const refStats = accuracyStats(rr.perTask.filter((t) => t.correct).length, rr.perTask.length);
      result.reference = {
        ...refStats,
        routing: refRouting,
        model: { path: refModel.info.path },
        perTask: rr.perTask,
        ...compareAccuracy(result, { ...refStats, perTask: rr.perTask }),
      };
    }
    return result;
  };
  // with a Context, the run takes its place in the context's queue (its routing as of this call)
  return target instanceof Context ? target.enqueue(go) : go();
}

/**
 * Flips, accuracy difference and the exact McNemar p-value of `run` against `reference`: two results of
 * multipleChoice() on the same tasks (same file, task kind and selection). For a sweep: score the
 * reference once, then compare every point with it.
 */
export function compareAccuracy(
  run: Pick<MultipleChoiceResult, 'accuracy' | 'perTask'>,
  reference: Pick<MultipleChoiceResult, 'accuracy' | 'perTask'>,
): AccuracyComparison {
  const a = run?.perTask;
  const b = reference?.perTask;
  if (!Array.isArray(a) || !Array.isArray(b)) throw new TypeError(expected('two multipleChoice() results', 'compareAccuracy()', !Array.isArray(a) ? run : reference));
  if (a.length !== b.length || a.some((t, i) => t.index !== b[i]!.index)) {
    throw new TypeError(`Expected results on the same tasks for compareAccuracy() but received ${a.length} and ${b.length} tasks${a.length === b.length ? ' in another selection' : ''}`);
  }
  const f = flips(a, b);
  return { flips: f, difference: run.accuracy - reference.accuracy, pValue: mcnemarExact(f.rightToWrong, f.wrongToRight) };
}
