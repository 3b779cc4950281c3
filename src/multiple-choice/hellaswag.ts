/**
 * HellaSwag's 6-line text format (llama-perplexity --hellaswag): per task, the context, the index of the
 * gold ending (0–3), then four endings. Scored by hellaswag_score() of perplexity.cpp: each ending is
 * tokenized after the context and a space; its score is the mean log-probability of its tokens (the
 * first from the shared prefix's last logits); the highest score (first on ties) is the choice.
 */
import { type TaskSource, decodeUtf8, parseLeadingInt, taskFileError } from './common.js';
import { type PreparedTask, type Tokenize, prepareMeanScored } from './prepared.js';
import { selectHellaswag } from './random.js';

export interface HellaswagTask extends TaskSource {
  context: string;
  gold: number;
  endings: string[];
}

/** Lines as llama-perplexity sees a file given with -f: one final newline removed, then split at each newline. */
export function fileLines(text: string): string[] {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  if (body === '') return [];
  const lines = body.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export function lineOfOffset(bytes: Uint8Array, offset: number): string {
  let line = 1;
  for (let i = 0; i < offset && i < bytes.length; i++) if (bytes[i] === 10) line++;
  return `line ${line} (byte ${offset})`;
}

export function parseHellaswag(bytes: Uint8Array, file: string, tasks: number): { available: number; selected: HellaswagTask[] } {
  const lines = fileLines(decodeUtf8(bytes, file, (o) => lineOfOffset(bytes, o)));
  if (lines.length === 0) throw taskFileError(file, 'no tasks (the file is empty)');
  if (lines.length % 6 !== 0) {
    throw taskFileError(file, `${lines.length} lines is not a multiple of 6 (a HellaSwag task is 6 lines: the context, the gold ending index 0-3, four endings)`);
  }
  const available = lines.length / 6;
  const parsed: HellaswagTask[] = [];
  for (let i = 0; i < available; i++) {
    const goldLine = lines[6 * i + 1]!;
    const gold = parseLeadingInt(goldLine);
    if (gold === undefined || gold < 0 || gold > 3) {
      throw taskFileError(file, `line ${6 * i + 2}: expected the gold ending index (0-3) of the task starting on line ${6 * i + 1} but found ${JSON.stringify(goldLine.slice(0, 40))}`);
    }
    parsed.push({ index: i, line: 6 * i + 1, context: lines[6 * i]!, gold, endings: lines.slice(6 * i + 2, 6 * i + 6) });
  }
  const order = selectHellaswag(available, Math.min(tasks, available));
  return { available, selected: order.map((i) => parsed[i]!) };
}

export function prepareHellaswag(t: HellaswagTask, tokenize: Tokenize, file: string): Promise<PreparedTask> {
  const texts = t.endings.map((e) => t.context + ' ' + e);
  return prepareMeanScored({ index: t.index, line: t.line }, texts, tokenize, file, 'ending', 'double', (chosen) => chosen === t.gold);
}
