/** A task tokenized for one model, ready for the addon, with the format's rule to score the answer. */
import { type NativeTask, type NativeTaskScores, type ScoredTask, type TaskSource, commonPrefix, taskFileError, where } from './common.js';

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

/** First index of the largest value (strictly greater replaces), as perplexity.cpp picks. */
export function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/**
 * Every answer must add a token after the prefix it shares with the others, and that prefix must not be
 * empty: otherwise llama-perplexity reads outside its token and logit arrays.
 */
export function checkAnswers(seqs: readonly Int32Array[], prefix: number, t: TaskSource, file: string, what: string): void {
  if (prefix === 0) throw taskFileError(file, `${where(t)}: the ${what}s share no first token (the model adds no BOS token), which llama-perplexity cannot score`);
  const i = seqs.findIndex((s) => s.length <= prefix);
  if (i >= 0) throw taskFileError(file, `${where(t)}: ${what} ${i + 1} adds no token after the part all ${what}s share, so it cannot be scored`);
}

/**
 * A task whose answers are scored by the mean log-probability of their tokens after the shared prefix
 * (HellaSwag and the binary multiple-choice format): `sums` says how perplexity.cpp adds them up —
 * `'double'` as hellaswag_score(), `'float'` (single precision) as multiple_choice_score().
 */
export async function prepareMeanScored(
  task: TaskSource,
  texts: readonly string[],
  tokenize: Tokenize,
  file: string,
  what: string,
  sums: 'double' | 'float',
  isCorrect: (chosen: number) => boolean,
): Promise<PreparedTask> {
  const seqs = await Promise.all(texts.map((text) => tokenize(text)));
  const prefix = commonPrefix(seqs);
  checkAnswers(seqs, prefix, task, file, what);
  const add = sums === 'float' ? (a: number, b: number) => Math.fround(a + b) : (a: number, b: number) => a + b;
  const mean = sums === 'float' ? (sum: number, n: number) => Math.fround(sum / n) : (sum: number, n: number) => sum / n;
  return {
    source: task,
    native: { seqs, prefix, pairs: endingPairs(seqs, prefix) },
    required: requiredTokens(seqs, prefix),
    score(r: NativeTaskScores): ScoredTask {
      let ir = 0;
      const scores = seqs.map((seq, s) => {
        let sum = r.first[s]!;
        let count = 1;
        for (let j = prefix; j < seq.length - 1; j++) {
          sum = add(sum, r.scores[ir++]!);
          count++;
        }
        return mean(sum, count);
      });
      const chosen = argmax(scores);
      return { chosen, correct: isCorrect(chosen), scores };
    },
  };
}
