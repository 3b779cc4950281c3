/**
 * bench() rows printed in llama-bench's output formats (-o md|csv|json|jsonl|sql), with the same field
 * names, order, value formats and SQL table as its printers (tools/llama-bench/llama-bench.cpp), so
 * tools that read llama-bench's output (scripts/compare-llama-bench.py reads the SQL) read these too.
 * moe-eval's routing columns come after llama-bench's (after samples_ns/samples_ts in JSON).
 *
 * Streaming: header(), row() and footer() print one piece each, as llama-bench prints while it runs;
 * formatBench() prints a whole result.
 */
import type { BenchResult, BenchRow } from './bench.js';
import { testName } from './bench.js';
import { expected } from './validate.js';

export const BENCH_FORMATS = ['md', 'csv', 'json', 'jsonl', 'sql'] as const;
export type BenchFormat = (typeof BENCH_FORMATS)[number];

type FieldType = 'STRING' | 'BOOL' | 'INT' | 'FLOAT';

/** llama-bench's test::get_fields() and get_field_type(), in order. */
const LLAMA_BENCH_FIELDS: readonly [keyof BenchRow, FieldType][] = [
  ['build_commit', 'STRING'], ['build_number', 'INT'], ['cpu_info', 'STRING'], ['gpu_info', 'STRING'], ['backends', 'STRING'],
  ['model_filename', 'STRING'], ['model_type', 'STRING'], ['model_size', 'INT'], ['model_n_params', 'INT'], ['n_batch', 'INT'],
  ['n_ubatch', 'INT'], ['n_threads', 'INT'], ['cpu_mask', 'STRING'], ['cpu_strict', 'BOOL'], ['poll', 'INT'],
  ['type_k', 'STRING'], ['type_v', 'STRING'], ['n_gpu_layers', 'INT'], ['n_cpu_moe', 'INT'], ['split_mode', 'STRING'],
  ['main_gpu', 'INT'], ['no_kv_offload', 'BOOL'], ['flash_attn', 'INT'], ['devices', 'STRING'], ['tensor_split', 'STRING'],
  ['tensor_buft_overrides', 'STRING'], ['load_mode', 'STRING'], ['lazy_mode', 'STRING'],
  ['embeddings', 'BOOL'],
  ['no_op_offload', 'INT'], ['no_host', 'BOOL'], ['fit_target', 'INT'], ['fit_min_ctx', 'INT'],
  ['n_prompt', 'INT'], ['n_gen', 'INT'], ['n_depth', 'INT'],
  ['test_time', 'STRING'], ['avg_ns', 'INT'], ['stddev_ns', 'INT'], ['avg_ts', 'FLOAT'], ['stddev_ts', 'FLOAT'],
];

/** moe-eval's columns after llama-bench's. Null values print as JSON null, an empty CSV cell, SQL NULL. */
const ROUTING_FIELDS: readonly [keyof BenchRow, FieldType][] = [
  ['routing', 'STRING'], ['experts', 'STRING'], ['expert_scale', 'STRING'], ['gate_scale', 'STRING'], ['ser', 'STRING'],
  ['k_mean', 'FLOAT'], ['kld_mean', 'FLOAT'], ['same_top', 'FLOAT'],
];

export const BENCH_FIELDS: readonly string[] = [...LLAMA_BENCH_FIELDS, ...ROUTING_FIELDS].map(([f]) => f);

/** C's std::to_string: integers as they are, doubles as "%f". */
function toStdString(value: number, type: FieldType): string {
  return type === 'FLOAT' ? value.toFixed(6) : String(Math.trunc(value));
}

/** A double written by a C++ ostream with default flags (precision 6, %g-like), as llama-bench's join() writes samples_ts. */
export function ostreamDouble(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(6)))));
  if (exp < -5 || exp >= 6) {
    const [m, e] = x.toExponential(5).split('e');
    const mant = m!.includes('.') ? m!.replace(/0+$/, '').replace(/\.$/, '') : m!;
    const n = Number(e);
    return `${mant}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const fixed = x.toFixed(Math.max(0, 5 - exp));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** A field's value as llama-bench's get_values() gives it (a string), or null for our null columns. */
function rawValue(row: BenchRow, field: keyof BenchRow, type: FieldType): string | null {
  const v = row[field];
  if (v === null || v === undefined) return null;
  if (type === 'BOOL') return v ? '1' : '0';
  if (type === 'STRING') return String(v);
  if (field === 'k_mean' || field === 'kld_mean' || field === 'same_top') return String(v);
  return toStdString(v as number, type);
}

function escapeJson(value: string): string {
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c <= 0x1f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

function jsonValue(value: string | null, type: FieldType): string {
  if (value === null) return 'null';
  if (type === 'STRING') return `"${escapeJson(value)}"`;
  if (type === 'BOOL') return value === '0' ? 'false' : 'true';
  return value;
}

function allFields(routingColumns: boolean): readonly [keyof BenchRow, FieldType][] {
  return routingColumns ? [...LLAMA_BENCH_FIELDS, ...ROUTING_FIELDS] : LLAMA_BENCH_FIELDS;
}

const csvEscape = (s: string) => `"${s.replace(/"/g, '""')}"`;
const sqlType = (t: FieldType) => (t === 'STRING' ? 'TEXT' : t === 'FLOAT' ? 'REAL' : 'INTEGER');

// --- markdown: llama-bench's markdown_printer, columns chosen the way it chooses them ---

interface MdColumn {
  title: string;
  width: number; // printf width: negative = left-aligned
  value: (row: BenchRow) => string;
}

function mdColumns(settings: BenchResult['settings'], routingColumns: boolean): MdColumn[] {
  // llama-bench: a CPU-like backend shows threads; others show ngl, and threads only when given
  const cpuBackend = /CPU|BLAS|ZenDNN/.test(settings.backends);
  const fmt2 = (x: number) => x.toFixed(2);
  const cols: MdColumn[] = [
    { title: 'model', width: -30, value: (r) => r.model_type },
    {
      title: 'size',
      width: 10,
      value: (r) => (r.model_size < 1024 ** 3 ? `${fmt2(r.model_size / 1024 / 1024)} MiB` : `${fmt2(r.model_size / 1024 / 1024 / 1024)} GiB`),
    },
    { title: 'params', width: 10, value: (r) => (r.model_n_params < 1e9 ? `${fmt2(r.model_n_params / 1e6)} M` : `${fmt2(r.model_n_params / 1e9)} B`) },
    { title: 'backend', width: -10, value: (r) => r.backends },
  ];
  return cols.concat(
    [
      { title: 'ngl', width: 3, value: (r: BenchRow) => String(r.n_gpu_layers), shown: !cpuBackend },
      { title: 'threads', width: 7, value: (r: BenchRow) => String(r.n_threads), shown: cpuBackend || settings.threadsGiven },
      { title: 'n_batch', width: 7, value: (r: BenchRow) => String(r.n_batch), shown: settings.batchSize !== 2048 },
      { title: 'n_ubatch', width: 8, value: (r: BenchRow) => String(r.n_ubatch), shown: settings.ubatchSize !== 512 },
      { title: 'type_k', width: 6, value: (r: BenchRow) => r.type_k, shown: settings.cacheTypeK !== 'f16' },
      { title: 'type_v', width: 6, value: (r: BenchRow) => r.type_v, shown: settings.cacheTypeV !== 'f16' },
      { title: 'fa', width: 3, value: (r: BenchRow) => String(r.flash_attn), shown: settings.flashAttention !== 'auto' },
      { title: 'test', width: 15, value: (r: BenchRow) => testName({ nPrompt: r.n_prompt, nGen: r.n_gen, nDepth: r.n_depth }), shown: true },
      { title: 't/s', width: 20, value: (r: BenchRow) => `${fmt2(r.avg_ts)} ± ${fmt2(r.stddev_ts)}`, shown: true },
      { title: 'routing', width: -24, value: (r: BenchRow) => r.routing, shown: routingColumns },
      { title: 'k̄', width: 6, value: (r: BenchRow) => r.k_mean.toFixed(2), shown: routingColumns },
      { title: 'kld', width: 10, value: (r: BenchRow) => (r.kld_mean === null ? '' : r.kld_mean.toFixed(6)), shown: routingColumns && settings.kld },
      { title: 'same top', width: 8, value: (r: BenchRow) => (r.same_top === null ? '' : `${(100 * r.same_top).toFixed(1)}%`), shown: routingColumns && settings.kld },
    ].filter((c) => c.shown),
  );
}

const pad = (s: string, width: number) => (width < 0 ? s.padEnd(-width) : s.padStart(width));

// --- the printers ---

export interface BenchPrinter {
  header(): string;
  row(row: BenchRow, index: number): string;
  footer(rows: readonly BenchRow[]): string;
}

export interface BenchPrintOptions {
  /** moe-eval's routing columns after llama-bench's (default true); false prints exactly llama-bench's output. */
  routingColumns?: boolean;
}

export function benchPrinter(format: BenchFormat, settings: BenchResult['settings'], options: BenchPrintOptions = {}): BenchPrinter {
  if (!(BENCH_FORMATS as readonly string[]).includes(format)) throw new TypeError(expected(`one of ${BENCH_FORMATS.join(', ')}`, 'format', format));
  const routingColumns = options.routingColumns ?? true;
  const fields = allFields(routingColumns);
  const values = (row: BenchRow) => fields.map(([f, t]) => rawValue(row, f, t));
  switch (format) {
    case 'csv':
      return {
        header: () => `${fields.map(([f]) => f).join(',')}\n`,
        row: (row) => `${values(row).map((v) => (v === null ? '' : csvEscape(v))).join(',')}\n`,
        footer: () => '',
      };
    case 'json': {
      const body = (row: BenchRow) => {
        const v = values(row);
        const n = LLAMA_BENCH_FIELDS.length;
        let s = '  {\n';
        for (let i = 0; i < n; i++) s += `    "${fields[i]![0]}": ${jsonValue(v[i]!, fields[i]![1])},\n`;
        s += `    "samples_ns": [ ${row.samples_ns.join(', ')} ],\n`;
        s += `    "samples_ts": [ ${row.samples_ts.map(ostreamDouble).join(', ')} ]${routingColumns ? ',' : ''}\n`;
        for (let i = n; i < fields.length; i++) s += `    "${fields[i]![0]}": ${jsonValue(v[i]!, fields[i]![1])}${i < fields.length - 1 ? ',' : ''}\n`;
        return `${s}  }`;
      };
      return {
        header: () => '[\n',
        row: (row, index) => (index > 0 ? ',\n' : '') + body(row),
        footer: () => '\n]\n',
      };
    }
    case 'jsonl':
      return {
        header: () => '',
        row: (row) => {
          const v = values(row);
          const n = LLAMA_BENCH_FIELDS.length;
          let s = '{';
          for (let i = 0; i < n; i++) s += `"${fields[i]![0]}": ${jsonValue(v[i]!, fields[i]![1])}, `;
          s += `"samples_ns": [ ${row.samples_ns.join(', ')} ],`;
          s += `"samples_ts": [ ${row.samples_ts.map(ostreamDouble).join(', ')} ]`;
          for (let i = n; i < fields.length; i++) s += `, "${fields[i]![0]}": ${jsonValue(v[i]!, fields[i]![1])}`;
          return `${s}}\n`;
        },
        footer: () => '',
      };
    case 'sql':
      return {
        header: () =>
          `CREATE TABLE IF NOT EXISTS llama_bench (\n${fields.map(([f, t], i) => `  ${f} ${sqlType(t)}${i < fields.length - 1 ? ',' : ''}`).join('\n')}\n);\n\n`,
        row: (row) =>
          `INSERT INTO llama_bench (${fields.map(([f]) => f).join(', ')}) VALUES (${values(row)
            .map((v) => (v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`))
            .join(', ')});\n`,
        footer: () => '',
      };
    case 'md': {
      const cols = mdColumns(settings, routingColumns);
      return {
        header: () =>
          `|${cols.map((c) => ` ${pad(c.title, c.width)} |`).join('')}\n|${cols
            .map((c) => ` ${'-'.repeat(Math.abs(c.width) - 1)}${c.width > 0 ? ':' : '-'} |`)
            .join('')}\n`,
        row: (row) => `|${cols.map((c) => ` ${pad(c.value(row), c.width)} |`).join('')}\n`,
        footer: (rows) => (rows.length ? `\nbuild: ${rows[0]!.build_commit} (${rows[0]!.build_number})\n` : ''),
      };
    }
  }
}

/** A whole bench() result in one of llama-bench's output formats. */
export function formatBench(result: BenchResult, format: BenchFormat = 'md', options: BenchPrintOptions = {}): string {
  const p = benchPrinter(format, result.settings, options);
  return p.header() + result.rows.map((r, i) => p.row(r, i)).join('') + p.footer(result.rows);
}
