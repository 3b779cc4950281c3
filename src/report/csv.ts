/**
 * ResultRow[] → CSV as RFC 4180 defines it: CRLF line ends, a header line, and a field quoted (with
 * inner quotes doubled) when it holds a comma, a quote, CR or LF. Numbers keep full precision
 * (String(n), the shortest exact form) because results.csv is for re-analysis, not for reading;
 * the HTML table is where numbers are rounded. null (no reference to compare with) is an empty field.
 */
import { RESULT_COLUMNS, type ResultRow } from './types.js';

const NEEDS_QUOTES = /[",\r\n]|^\s|\s$/;

/** One CSV field. Leading/trailing blanks are quoted too, so no reader trims them away. */
export function csvField(value: string | number | boolean | null): string {
  if (value === null) return '';
  // -0 prints as "0" with String(); keep it that way rather than Object.is-distinguishing it.
  const text = String(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The whole file: header + one line per row, every line (the last too) ended by CRLF. */
export function toCsv(rows: readonly ResultRow[]): string {
  const lines = [RESULT_COLUMNS.join(',')];
  for (const row of rows) lines.push(RESULT_COLUMNS.map((c) => csvField(row[c] ?? null)).join(','));
  return lines.join('\r\n') + '\r\n';
}
