/**
 * Winogrande's CSV (llama-perplexity --winogrande): `index,sentence,choice1,choice2,answer` with one `_`
 * in the sentence (quoted when it contains commas) and answer 1 or 2. Parsed like
 * load_winogrande_from_csv() and scored like winogrande_score() of perplexity.cpp: the sentence is
 * tokenized with each choice in place of `_`; when both differ from the shared prefix by more than 3
 * tokens, only the tokens after the choice are scored (partial scoring), else all from the first
 * differing one; the last token is not scored when more than one would be; the mean log-probability
 * decides (choice 1 only when strictly higher).
 */
import { type NativeTaskScores, type ScoredTask, type TaskSource, commonPrefix, decodeUtf8, parseLeadingInt, taskFileError, where } from './common.js';
import { lineOfOffset } from './hellaswag.js';
import type { PreparedTask, Tokenize } from './prepared.js';
import { selectFloatScaled } from './random.js';

export interface WinograndeTask extends TaskSource {
  first: string;
  second: string;
  choices: [string, string];
  /** 1 or 2 */
  answer: number;
}

const K_MIN_TRAILING_CTX = 3;

/** One CSV line as load_winogrande_from_csv() splits it, or why it cannot be a task. */
function parseLine(line: string): Omit<WinograndeTask, 'index' | 'line'> | string {
  const commas: number[] = [];
  let quoted = false;
  for (let i = 0; i < line.length && commas.length < 4; i++) {
    const c = line[i];
    if (!quoted) {
      if (c === ',') commas.push(i);
      else if (c === '"') quoted = true;
    } else if (c === '"') quoted = false;
  }
  if (commas.length !== 4) return 'expected 5 comma-separated fields (index, sentence, choice 1, choice 2, answer)';
  const [c0, c1, c2, c3] = commas as [number, number, number, number];
  const sentence = line[c0 + 1] === '"' ? line.slice(c0 + 2, c0 + 2 + Math.max(0, c1 - c0 - 3)) : line.slice(c0 + 1, c1);
  const blank = sentence.indexOf('_');
  if (blank < 0) return 'the sentence has no _ for the choices';
  const answer = parseLeadingInt(line.slice(c3 + 1));
  if (answer !== 1 && answer !== 2) return `expected the answer 1 or 2 but found ${JSON.stringify(line.slice(c3 + 1, c3 + 41))}`;
  return {
    first: sentence.slice(0, blank),
    second: sentence.slice(blank + 1),
    choices: [line.slice(c1 + 1, c2), line.slice(c2 + 1, c3)],
    answer,
  };
}

/**
 * Every line is a task, except a first line llama-perplexity would skip (a header such as
 * `index,sentence,option1,option2,answer`) and empty lines; any other line it would skip is an error here.
 * Unlike llama-perplexity -f, the last line counts even without a final newline (see docs/multiple-choice.md).
 */
export function parseWinogrande(bytes: Uint8Array, file: string, tasks: number): { available: number; selected: WinograndeTask[]; skippedHeader: boolean } {
  const lines = decodeUtf8(bytes, file, (o) => lineOfOffset(bytes, o)).split('\n');
  const parsed: WinograndeTask[] = [];
  let skippedHeader = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '' || line === '\r') continue;
    const t = parseLine(line);
    if (typeof t === 'string') {
      if (i === 0) {
        skippedHeader = true;
        continue;
      }
      throw taskFileError(file, `line ${i + 1}: ${t}`);
    }
    parsed.push({ index: parsed.length, line: i + 1, ...t });
  }
  if (parsed.length === 0) throw taskFileError(file, 'no tasks');
  const selected = tasks > 0 && tasks < parsed.length ? selectFloatScaled(parsed.length, tasks).map((i) => parsed[i]!) : parsed;
  return { available: parsed.length, selected, skippedHeader };
}

export async function prepareWinogrande(t: WinograndeTask, tokenize: Tokenize, file: string): Promise<PreparedTask> {
  const [seq0, seq1, base1, base2] = await Promise.all([
    tokenize(t.first + t.choices[0] + t.second),
    tokenize(t.first + t.choices[1] + t.second),
    tokenize(t.first + t.choices[0]),
    tokenize(t.first + t.choices[1]),
  ]);
  const prefix = commonPrefix([seq0, seq1]);
  if (prefix === 0) throw taskFileError(file, `${where(t)}: the two sentences share no first token (the model adds no BOS token), which llama-perplexity cannot score`);
  if (seq0.length <= prefix || seq1.length <= prefix) {
    throw taskFileError(file, `${where(t)}: one sentence tokenizes to the start of the other, so it cannot be scored`);
  }
  const skipChoice = seq0.length - prefix > K_MIN_TRAILING_CTX && seq1.length - prefix > K_MIN_TRAILING_CTX;
  const nBase = [skipChoice ? base1.length : prefix, skipChoice ? base2.length : prefix] as const;
  const seqs = [seq0, seq1] as const;
  for (let s = 0; s < 2; s++) {
    if (nBase[s]! < prefix || nBase[s]! > seqs[s]!.length) {
      // perplexity.cpp's unsigned index arithmetic would wrap here and read outside its logits
      throw taskFileError(file, `${where(t)}: the sentence up to choice ${s + 1} tokenizes to ${nBase[s]} tokens, outside the ${prefix} to ${seqs[s]!.length} that llama-perplexity can score`);
    }
  }
  const last = seqs.map((seq, s) => (seq.length - nBase[s]! > 1 ? 1 : 0));
  // the (row, token) pairs of winogrande_score(), its known offset for the second sentence included
  // (its FIXME: without partial scoring, the second sentence's first token is scored from the first
  // sentence's last logits)
  const pairs: number[] = [];
  const counts: number[] = [];
  for (let s = 0; s < 2; s++) {
    const seq = seqs[s]!;
    let li = s === 0 ? nBase[0]! - prefix : seq0.length - prefix + nBase[1]! - prefix;
    const start = pairs.length;
    for (let j = nBase[s]! - 1; j < seq.length - 1 - last[s]!; j++) pairs.push(li++, seq[j + 1]!);
    counts.push((pairs.length - start) / 2);
  }
  return {
    source: { index: t.index, line: t.line },
    native: { seqs: [seq0, seq1], prefix, pairs: Int32Array.from(pairs) },
    required: prefix + seq0.length - prefix + seq1.length - prefix,
    score(r: NativeTaskScores): ScoredTask {
      let ir = 0;
      // single-precision sums divided by the token count, as winogrande_score() does
      const scores = seqs.map((seq, s) => {
        let sum = 0;
        for (let k = 0; k < counts[s]!; k++) sum = Math.fround(sum + r.scores[ir++]!);
        return Math.fround(sum / Math.fround(seq.length - nBase[s]! - last[s]!));
      });
      const result = scores[0]! > scores[1]! ? 1 : 2;
      return { chosen: result - 1, correct: result === t.answer, scores };
    },
  };
}
