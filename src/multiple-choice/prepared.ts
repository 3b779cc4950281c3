/** A task tokenized for one model, ready for the addon, with the format's rule to score the answer. */
import type { NativeTask, NativeTaskScores, ScoredTask, TaskSource } from './common.js';

export interface PreparedTask {
  source: TaskSource;
  native: NativeTask;
  /** KV cells the task needs: the shared prefix once, then the rest of every answer (llama-perplexity's required_tokens). */
  required: number;
  score(r: NativeTaskScores): ScoredTask;
}

/** The model's tokenizer as llama-perplexity calls it (common_tokenize: special tokens added, not parsed). */
export type Tokenize = (text: string) => Promise<Int32Array>;

/** Rows and tokens of the (row, token) pairs that score every answer token after the first, in order. */
export function endingPairs(seqs: readonly Int32Array[], prefix: number): Int32Array {
  const pairs: number[] = [];
  let row = 1; // row 0: the prefix's last token, scored through `first`
  for (const seq of seqs) {
    for (let j = prefix; j < seq.length - 1; j++) pairs.push(row++, seq[j + 1]!);
  }
  return Int32Array.from(pairs);
}

export function requiredTokens(seqs: readonly Int32Array[], prefix: number): number {
  return seqs.reduce((n, s) => n + s.length - prefix, prefix);
}
