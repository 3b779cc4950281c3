/**
 * What the three task formats share: the parsed task, the tokenized task sent to the addon, the error
 * for a malformed file, and text decoding that names the byte of a bad UTF-8 sequence.
 */
import { MoeEvalError } from '../errors.js';

export type TaskKind = 'hellaswag' | 'winogrande' | 'multiple-choice';

/** Where a task is in its file: its 1-based line (text formats) or the byte offset of its record (binary). */
export interface TaskSource {
  /** 0-based position of the task in the file. */
  index: number;
  line?: number;
  offset?: number;
}

/** Tokenized task for native/MultipleChoiceWorker.cpp. */
export interface NativeTask {
  seqs: Int32Array[];
  prefix: number;
  /** (logit row, token) pairs whose log-softmax the format scores; rows count from the prefix's last token. */
  pairs: Int32Array;
}

/** The addon's answer for one task. */
export interface NativeTaskScores {
  /** Per sequence: log of llama-perplexity's softmax of the prefix's last row at the sequence's next token. */
  first: Float32Array;
  /** Per pair: llama-perplexity's compute_logprobs value. */
  scores: Float32Array;
}

export interface ScoredTask {
  /** The answer chosen (0-based). */
  chosen: number;
  correct: boolean;
  /** The score of every answer (mean log-probability per token, as the format defines it). */
  scores: number[];
}

export function where(s: TaskSource): string {
  return s.line !== undefined ? `line ${s.line}` : s.offset !== undefined ? `the task at byte ${s.offset}` : `task ${s.index}`;
}

export function taskFileError(file: string, message: string): MoeEvalError {
  return new MoeEvalError('ERR_TASK_FILE', `${file}: ${message}`);
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes UTF-8 strictly: tokenization must see the file's bytes, not replacement characters. */
export function decodeUtf8(bytes: Uint8Array, file: string, at: (byteOffset: number) => string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    return decoder.decode(bytes.subarray(0, firstInvalidUtf8(bytes)));
  }
  function firstInvalidUtf8(b: Uint8Array): never {
    let i = 0;
    while (i < b.length) {
      const c = b[i]!;
      const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
      let ok = n > 0 && i + n <= b.length;
      for (let k = 1; ok && k < n; k++) ok = (b[i + k]! & 0xc0) === 0x80;
      if (ok && n > 1) {
        try {
          decoder.decode(b.subarray(i, i + n));
        } catch {
          ok = false;
        }
      }
      if (!ok) throw taskFileError(file, `invalid UTF-8 at ${at(i)}`);
      i += n;
    }
    throw taskFileError(file, 'invalid UTF-8');
  }
}

/** Length of the token prefix shared by every sequence. */
export function commonPrefix(seqs: readonly Int32Array[]): number {
  const min = Math.min(...seqs.map((s) => s.length));
  let k = 0;
  for (; k < min; k++) {
    const t = seqs[0]![k];
    if (!seqs.every((s) => s[k] === t)) break;
  }
  return k;
}

/** std::stoi / `istream >> int`: optional leading white space and sign, then digits; the rest ignored. */
export function parseLeadingInt(s: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  if (!m) return undefined;
  const v = Number(m[1]);
  return v >= -(2 ** 31) && v < 2 ** 31 ? v : undefined;
}

/** Default settings of llama-perplexity: tasks scored when none are given (0 = all), sequences per decode. */
export const FORMAT_LIMITS: Record<TaskKind, { defaultTasks: number; maxSequences: number; logitsForLast: boolean }> = {
  // max_tasks_per_batch × sequences per task, bounded by n_seq_max
  hellaswag: { defaultTasks: 400, maxSequences: 4 * 32, logitsForLast: false },
  winogrande: { defaultTasks: 0, maxSequences: 2 * 128, logitsForLast: true },
  'multiple-choice': { defaultTasks: 0, maxSequences: 4 * 32, logitsForLast: false },
};
