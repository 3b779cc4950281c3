/**
 * Append-only JSONL results with resume: a header line that says what the file holds (its kind and
 * the model, text and settings its points were computed from), then one line per finished point,
 * flushed to disk before the next point starts. A line torn by a crash (no trailing newline) is cut off
 * when the file is reopened, so a resumed run neither loses nor duplicates a point.
 *
 * A file that is not a moe-eval results file of the same kind, model and text is refused rather than
 * appended to; a second process that opens a file already being written is refused (a lock file
 * `<file>.lock` holding the writer's pid; a lock left by a dead process is taken over).
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

import { MoeEvalError } from './errors.js';
import { stableJson } from './fingerprint.js';

export const RESULTS_FORMAT = 'moe-eval-results';

export interface ResultsHeader {
  format: typeof RESULTS_FORMAT;
  version: 1;
  /** What produced the file: 'sweep', 'prune', 'scan', … */
  kind: string;
  /** What every point was computed from: model and text fingerprints, sizes. */
  basis: Record<string, unknown>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function takeLock(lock: string, path: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new MoeEvalError('ERR_FILE', `Cannot create ${lock}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      const pid = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new MoeEvalError('ERR_FILE', `${path} is being written by another moe-eval process (pid ${pid}, lock ${lock}); wait for it to finish or choose another output file`);
      }
      unlinkSync(lock); // left by a process that is gone
    }
  }
  throw new MoeEvalError('ERR_FILE', `Cannot take the lock ${lock}`);
}

export class ResultsFile<T extends { key: string }> {
  readonly path: string;
  readonly #rows: T[] = [];
  readonly #lock: string;
  #fd = -1;

  constructor(path: string, header: Omit<ResultsHeader, 'format' | 'version'>) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    this.#lock = `${path}.lock`;
    takeLock(this.#lock, path);
    try {
      this.#open({ format: RESULTS_FORMAT, version: 1, ...header });
    } catch (e) {
      unlinkSync(this.#lock);
      throw e;
    }
  }

  #open(header: ResultsHeader): void {
    const path = this.path;
    const want = stableJson(header);
    if (existsSync(path) && readFileSync(path, 'utf8').length > 0) {
      const text = readFileSync(path, 'utf8');
      const end = text.lastIndexOf('\n') + 1;
      const complete = text.slice(0, end);
      const lines = complete.split('\n').filter((l) => l.trim() !== '');
      let first: unknown;
      try {
        first = lines.length ? JSON.parse(lines[0]!) : undefined;
      } catch {
        first = undefined;
      }
      const f = first as Partial<ResultsHeader> | undefined;
      if (!f || f.format !== RESULTS_FORMAT) {
        throw new MoeEvalError('ERR_FILE', `${path} exists and is not a moe-eval results file (its first line is not a moe-eval header); choose another output file or remove it`);
      }
      if (f.kind !== header.kind || stableJson(f) !== want) {
        const what = f.kind !== header.kind ? `a ${f.kind} results file, not ${header.kind}` : 'results of another model, text or settings';
        throw new MoeEvalError('ERR_FILE', `${path} holds ${what}; choose another output file (or remove it to start over)`);
      }
      for (const [i, line] of lines.slice(1).entries()) {
        try {
          this.#rows.push(JSON.parse(line) as T);
        } catch {
          throw new MoeEvalError('ERR_FILE', `${path} line ${i + 2} is not JSON; the file was edited or is not a moe-eval results file`);
        }
      }
      if (end < Buffer.byteLength(text)) {
        const fd = openSync(path, 'r+');
        ftruncateSync(fd, Buffer.byteLength(complete));
        closeSync(fd);
      }
      this.#fd = openSync(path, 'a');
    } else {
      this.#fd = openSync(path, 'w');
      writeSync(this.#fd, want + '\n');
      fsyncSync(this.#fd);
    }
  }

  get rows(): readonly T[] {
    return this.#rows;
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
      try {
        unlinkSync(this.#lock);
      } catch {
        /* already gone */
      }
    }
  }
}
