/**
 * writeReport(): checks the data, renders everything, then writes report.html, results.json,
 * results.csv and one .svg per plot into `dir`. Each file is written to a temp file in the same
 * folder and renamed over the target (rename is atomic within one filesystem), so a reader, or a
 * crash midway, never sees a half-written file: each file is either the old version or the new one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { expected } from '../validate.js';
import { toCsv } from './csv.js';
import { renderHtml } from './html.js';
import { renderPlots } from './plot.js';
import type { Plot, ReportData, ResultRow, ScanReport } from './types.js';

/** Every plot name renderPlots() can produce: a stale one from an earlier run is removed. */
const PLOT_NAMES = ['perplexity-vs-bpw', 'kld-vs-bpw', 'perplexity-vs-experts', 'kld-vs-experts-per-token', 'scan-heatmap'] as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// NaN is "not a number" to a reader, so it is a TypeError like in src/validate.ts; ±Infinity and
// out-of-range numbers are RangeErrors.
function finite(value: unknown, name: string, min = -Infinity, what = 'a finite number'): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(expected(what, name, value));
  if (!Number.isFinite(value) || value < min) throw new RangeError(expected(what, name, value));
  return value;
}

function nullableFinite(value: unknown, name: string, min = -Infinity, max = Infinity, what = 'a finite number or null'): number | null {
  if (value === null) return null;
  const v = finite(value, name, min, what);
  if (v > max) throw new RangeError(expected(what, name, value));
  return v;
}

function text(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(expected('a non-empty string', name, value));
  return value;
}

function integerAtLeast(value: unknown, name: string, min: number): number {
  const what = `an integer >= ${min}`;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(expected(what, name, value));
  if (value < min || !Number.isSafeInteger(value)) throw new RangeError(expected(what, name, value));
  return value;
}

/** One row, checked and copied with only the ResultRow fields (in RESULT_COLUMNS order). */
function checkRow(value: unknown, name: string): ResultRow {
  if (!isPlainObject(value)) throw new TypeError(expected('a result row object', name, value));
  const row: ResultRow = {
    model: text(value.model, `${name}.model`),
    fileType: text(value.fileType, `${name}.fileType`),
    sizeBytes: integerAtLeast(value.sizeBytes, `${name}.sizeBytes`, 0),
    bitsPerWeight: finite(value.bitsPerWeight, `${name}.bitsPerWeight`, Number.MIN_VALUE, 'a finite number > 0'),
    routing: text(value.routing, `${name}.routing`),
    // 0 is allowed: a dense (non-MoE) model routes to no experts.
    experts: integerAtLeast(value.experts, `${name}.experts`, 0),
    scaleRule: text(value.scaleRule, `${name}.scaleRule`),
    perplexity: finite(value.perplexity, `${name}.perplexity`, Number.MIN_VALUE, 'a finite number > 0'),
    stderr: finite(value.stderr, `${name}.stderr`, 0, 'a finite number >= 0'),
    deltaPercent: nullableFinite(value.deltaPercent, `${name}.deltaPercent`),
    // A mean KLD is >= 0 in exact arithmetic, but float rounding can leave a tiny negative mean for a
    // row nearly identical to the reference, so any finite value is accepted.
    kldMean: nullableFinite(value.kldMean, `${name}.kldMean`),
    sameTopPercent: nullableFinite(value.sameTopPercent, `${name}.sameTopPercent`, 0, 100, 'a number in [0, 100] or null'),
    tokensPerSecond: finite(value.tokensPerSecond, `${name}.tokensPerSecond`, 0, 'a finite number >= 0'),
    threads: value.threads === undefined ? null : nullableFinite(value.threads, `${name}.threads`, 1),
    // k̄ only where the data has it, so a report of older data reads back unchanged
    ...(value.expertsPerToken === undefined ? {} : { expertsPerToken: nullableFinite(value.expertsPerToken, `${name}.expertsPerToken`, 0) }),
  };
  return row;
}

/**
 * Validates report data, throwing "Expected X for Y but received Z" TypeError/RangeError, and
 * returns a clean copy (only the known fields) so what is written is exactly what was checked.
 */
export function checkReportData(data: unknown): ReportData {
  if (!isPlainObject(data)) throw new TypeError(expected('a report data object', 'data', data));
  const title = text(data.title, 'data.title');
  const createdAt = text(data.createdAt, 'data.createdAt');
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(createdAt) || Number.isNaN(Date.parse(createdAt))) {
    throw new RangeError(expected('an ISO 8601 date (e.g. 2025-01-31T12:00:00Z)', 'data.createdAt', createdAt));
  }
  if (!isPlainObject(data.settings)) throw new TypeError(expected('an object of settings', 'data.settings', data.settings));
  const settings: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(data.settings)) {
    const name = `data.settings[${JSON.stringify(k)}]`;
    if (typeof v === 'number') settings[k] = finite(v, name);
    else if (typeof v === 'string' || typeof v === 'boolean') settings[k] = v;
    else throw new TypeError(expected('a string, finite number or boolean', name, v));
  }
  if (!isPlainObject(data.fingerprints)) throw new TypeError(expected('an object of fingerprints', 'data.fingerprints', data.fingerprints));
  const fingerprints: Record<string, string> = {};
  for (const [k, v] of Object.entries(data.fingerprints)) {
    if (typeof v !== 'string') throw new TypeError(expected('a string', `data.fingerprints[${JSON.stringify(k)}]`, v));
    fingerprints[k] = v;
  }
  if (!Array.isArray(data.rows)) throw new TypeError(expected('an array of result rows', 'data.rows', data.rows));
  if (data.rows.length === 0) throw new RangeError(expected('at least one result row', 'data.rows', data.rows));
  const rows = (data.rows as unknown[]).map((r, i) => checkRow(r, `data.rows[${i}]`));
  const scan = data.scan === undefined ? undefined : checkScan(data.scan);
  return { title, createdAt, settings, fingerprints, rows, ...(scan ? { scan } : {}) };
}

/** A scan matrix: layers × changes, every entry a finite number. */
function checkScan(value: unknown): ScanReport {
  if (!isPlainObject(value)) throw new TypeError(expected('a scan object (layers, changes, kld, deltaPercent)', 'data.scan', value));
  if (!Array.isArray(value.layers) || value.layers.length === 0) throw new TypeError(expected('a non-empty array of layer indices', 'data.scan.layers', value.layers));
  const layers = value.layers.map((l, i) => integerAtLeast(l, `data.scan.layers[${i}]`, 0));
  if (!Array.isArray(value.changes) || value.changes.length === 0) throw new TypeError(expected('a non-empty array of change labels', 'data.scan.changes', value.changes));
  const changes = value.changes.map((c, i) => text(c, `data.scan.changes[${i}]`));
  const matrix = (m: unknown, name: string): number[][] => {
    if (!Array.isArray(m) || m.length !== layers.length) throw new TypeError(expected(`${layers.length} rows (one per layer)`, name, m));
    return m.map((row, i) => {
      if (!Array.isArray(row) || row.length !== changes.length) throw new TypeError(expected(`${changes.length} values (one per change)`, `${name}[${i}]`, row));
      return row.map((v, j) => finite(v, `${name}[${i}][${j}]`));
    });
  };
  return { layers, changes, kld: matrix(value.kld, 'data.scan.kld'), deltaPercent: matrix(value.deltaPercent, 'data.scan.deltaPercent') };
}

/** Writes `content` to `path` via a temp file in the same folder + rename; the temp file never outlives a failure. */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(content, 'utf8');
      // Flush before the rename, or a power cut could leave the new name pointing at empty data.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

export interface WrittenReport {
  html: string;
  json: string;
  csv: string;
  plots: string[];
}

/**
 * Writes the report files into `dir` (created if missing) and returns their absolute paths.
 * `extraPlots` (e.g. src/report/prune.ts's) follow the plots the rows support.
 */
export async function writeReport(dir: string, data: ReportData, extraPlots: readonly Plot[] = []): Promise<WrittenReport> {
  text(dir, 'dir');
  const clean = checkReportData(data);
  const out = resolve(dir);
  // Render everything before touching the disk: a rendering failure then leaves the folder as it was.
  const plots = [...(await renderPlots(clean.rows, clean.scan)), ...extraPlots];
  const html = renderHtml(clean, plots);
  const json = JSON.stringify(clean, null, 2) + '\n';
  const csv = toCsv(clean.rows);

  await mkdir(out, { recursive: true });
  const written: WrittenReport = { html: join(out, 'report.html'), json: join(out, 'results.json'), csv: join(out, 'results.csv'), plots: [] };
  for (const plot of plots) {
    const path = join(out, `${plot.name}.svg`);
    // A standalone .svg file needs an XML declaration to be picked up as UTF-8 by every viewer.
    await writeFileAtomic(path, `<?xml version="1.0" encoding="UTF-8"?>\n${plot.svg}\n`);
    written.plots.push(path);
  }
  // A plot this data no longer supports (e.g. no KLD this time) must not linger beside the new report.
  const current = new Set(plots.map((p) => p.name));
  for (const name of PLOT_NAMES) {
    if (!current.has(name)) await unlink(join(out, `${name}.svg`)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
  await writeFileAtomic(written.csv, csv);
  await writeFileAtomic(written.json, json);
  // The HTML last: once it is there, everything it describes is there too.
  await writeFileAtomic(written.html, html);
  return written;
}
