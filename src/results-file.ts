/**
 * Append-only JSONL results with resume: one line per finished point, flushed to disk before the next
 * point starts. A line torn by a crash (no trailing newline) is cut off when the file is reopened, so
 * a resumed run neither loses nor duplicates a point.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

import { MoeEvalError } from './errors.js';

export class ResultsFile<T extends { key: string }> {
  readonly path: string;
  readonly #rows: T[] = [];
  #fd: number;

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    let text = '';
    if (existsSync(path)) {
      text = readFileSync(path, 'utf8');
      const end = text.lastIndexOf('\n') + 1;
      const complete = text.slice(0, end);
      for (const [i, line] of complete.split('\n').entries()) {
        if (line.trim() === '') continue;
        try {
          this.#rows.push(JSON.parse(line) as T);
        } catch {
          throw new MoeEvalError('ERR_FILE', `${path} line ${i + 1} is not JSON; it is not a moe-eval results file (or it was edited)`);
        }
      }
      if (end < Buffer.byteLength(text)) {
        const fd = openSync(path, 'r+');
        ftruncateSync(fd, Buffer.byteLength(complete));
        closeSync(fd);
      }
    }
    this.#fd = openSync(path, 'a');
  }

  get rows(): readonly T[] {
    return this.#rows;
  }

  has(key: string): boolean {
    return this.#rows.some((r) => r.key === key);
  }

  get(key: string): T | undefined {
    return this.#rows.find((r) => r.key === key);
  }

  append(row: T): void {
    writeSync(this.#fd, JSON.stringify(row) + '\n');
    fsyncSync(this.#fd);
    this.#rows.push(row);
  }

  close(): void {
    if (this.#fd >= 0) {
      closeSync(this.#fd);
      this.#fd = -1;
    }
  }
}
