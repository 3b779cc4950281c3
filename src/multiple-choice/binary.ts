/**
 * llama-perplexity's binary multiple-choice format (--multiple-choice, read with -bf), little-endian:
 *
 *   u32 n_task; u32 task_pos[n_task] (byte offset of each task);
 *   per task: string question; answers mc1; answers mc2
 *   answers: u32 n (at most 100); n strings; i32 labels[n] (1 = correct)
 *   string: u32 size; size bytes (UTF-8)
 *
 * Only mc1 is scored (one correct answer; mc2, several correct answers, is read and ignored). All tasks
 * are read in order after the position table (the positions are then not used); a subset is drawn at
 * random and each chosen task read at its position, as multiple_choice_score() does. Scored like
 * HellaSwag with any number of answers, in single precision; correct when the chosen answer's label is 1.
 */
import { type TaskSource, decodeUtf8, taskFileError } from './common.js';
import { type PreparedTask, type Tokenize, prepareMeanScored } from './prepared.js';
import { selectFloatScaled } from './random.js';

export interface BinaryTask extends TaskSource {
  question: string;
  answers: string[];
  labels: number[];
}

const MAX_ANSWERS = 100;

class Reader {
  readonly bytes: Uint8Array;
  readonly file: string;
  pos: number;
  readonly #view: DataView;

  constructor(bytes: Uint8Array, file: string, pos: number) {
    this.bytes = bytes;
    this.file = file;
    this.pos = pos;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u32(what: string): number {
    if (this.pos + 4 > this.bytes.length) throw taskFileError(this.file, `${what} at byte ${this.pos} runs past the end of the file (${this.bytes.length} bytes)`);
    const v = this.#view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  i32(what: string): number {
    const v = this.u32(what);
    return v | 0;
  }

  string(what: string): string {
    const at = this.pos;
    const size = this.u32(`the length of ${what}`);
    if (size > this.bytes.length - this.pos) {
      throw taskFileError(this.file, `${what} at byte ${at} is ${size} bytes long, past the end of the file (${this.bytes.length} bytes)`);
    }
    const start = this.pos;
    this.pos += size;
    return decodeUtf8(this.bytes.subarray(start, this.pos), this.file, (o) => `byte ${start + o} (in ${what} at byte ${at})`);
  }

  answers(what: string): { answers: string[]; labels: number[] } {
    const at = this.pos;
    const n = this.u32(`the number of ${what}`);
    if (n > MAX_ANSWERS) throw taskFileError(this.file, `the number of ${what} at byte ${at} is ${n}; llama-perplexity reads at most ${MAX_ANSWERS}`);
    const answers: string[] = [];
    for (let i = 0; i < n; i++) answers.push(this.string(`${what} ${i + 1}`));
    const labels: number[] = [];
    for (let i = 0; i < n; i++) labels.push(this.i32(`the label of ${what} ${i + 1}`));
    return { answers, labels };
  }

  task(index: number): BinaryTask {
    const offset = this.pos;
    const question = this.string(`the question of task ${index}`);
    const mc1 = this.answers(`answers of task ${index}`);
    this.answers(`multiple-correct answers (mc2) of task ${index}`);
    return { index, offset, question, ...mc1 };
  }
}

export function parseBinary(bytes: Uint8Array, file: string, tasks: number): { available: number; selected: BinaryTask[] } {
  const r = new Reader(bytes, file, 0);
  if (bytes.length < 4) throw taskFileError(file, `no tasks (the file has ${bytes.length} bytes; it starts with a 4-byte task count)`);
  const n = r.u32('the task count');
  if (n === 0) throw taskFileError(file, 'no tasks (the task count at byte 0 is 0)');
  if (n > (bytes.length - 4) / 4) {
    throw taskFileError(file, `the task count at byte 0 is ${n}, but a table of ${n} task positions does not fit the file (${bytes.length} bytes)`);
  }
  const positions: number[] = [];
  for (let i = 0; i < n; i++) positions.push(r.u32(`task position ${i}`));
  const selected: BinaryTask[] = [];
  if (tasks === 0 || tasks >= n) {
    for (let i = 0; i < n; i++) selected.push(r.task(i));
  } else {
    for (const idx of selectFloatScaled(n, tasks)) {
      const pos = positions[idx]!;
      if (pos >= bytes.length) {
        throw taskFileError(file, `the position of task ${idx} (byte ${4 + 4 * idx}) is ${pos}, past the end of the file (${bytes.length} bytes)`);
      }
      selected.push(new Reader(bytes, file, pos).task(idx));
    }
  }
  for (const t of selected) {
    if (t.question === '' || t.answers.length === 0) throw taskFileError(file, `task ${t.index} at byte ${t.offset} has an empty question or no answers`);
    const empty = t.answers.indexOf('');
    if (empty >= 0) throw taskFileError(file, `task ${t.index} at byte ${t.offset}: answer ${empty + 1} is empty`);
  }
  return { available: n, selected };
}

export function prepareBinary(t: BinaryTask, tokenize: Tokenize, file: string): Promise<PreparedTask> {
  const texts = t.answers.map((a) => t.question + ' ' + a);
  return prepareMeanScored({ index: t.index, offset: t.offset }, texts, tokenize, file, 'answer', 'float', (chosen) => t.labels[chosen] === 1);
}

/** Writes tasks in the binary format (for tests and the demo's task files). */
export function writeBinary(tasks: readonly { question: string; answers: readonly string[]; labels: readonly number[] }[]): Uint8Array {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return b;
  };
  const str = (s: string) => {
    const b = enc.encode(s);
    return [u32(b.length), b];
  };
  const bodies = tasks.map((t) => {
    const parts = [...str(t.question), u32(t.answers.length), ...t.answers.flatMap(str), ...t.labels.map((l) => u32(l)), u32(0)];
    return concat(parts);
  });
  let pos = 4 + 4 * tasks.length;
  chunks.push(u32(tasks.length));
  for (const b of bodies) {
    chunks.push(u32(pos));
    pos += b.length;
  }
  chunks.push(...bodies);
  return concat(chunks);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
