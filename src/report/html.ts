/**
 * report.html: one self-contained page that opens offline, forever. No external URL, no script,
 * CSS inline, plots inlined as SVG. A Content-Security-Policy forbids any fetch or script, so a
 * stray reference would show as broken rather than silently phoning out.
 *
 * Every piece of text from the data is escaped here; the SVGs come from Vega, which escapes its own
 * text, and are inserted as they are.
 */
import { formatBitsPerWeight, formatDeltaPercent, formatPercent, formatPerplexity, formatStderr, formatTokensPerSecond } from '../format.js';
import type { Plot, ReportData, ResultRow } from './types.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** toFixed without "-0.00": a value that rounds to zero shows as zero. */
function fixed(value: number, digits: number): string {
  const s = value.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

/** Binary units, as model files are usually sized (a "4.3 GiB" file is what `ls -lh` shows). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${fixed(value, value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** A cell's inner HTML (already escaped) and an optional tooltip with the exact value. */
interface Cell {
  html: string;
  title?: string;
}

const NA: Cell = { html: '<span class="na" title="no reference to compare with">—</span>' };

function num(text: string, title?: string): Cell {
  return title === undefined ? { html: escapeHtml(text) } : { html: escapeHtml(text), title };
}

const txt = (text: string): Cell => ({ html: escapeHtml(text) });

/**
 * Results columns, written by src/format.ts as in every table of the CLI. Digits follow llama.cpp's own
 * printout (PPL to 4 decimals and its error to 5, KLD to 6) so the page and llama-perplexity's log can be compared by eye; CSV/JSON keep full precision.
 */
const COLUMNS: { head: string; title: string; numeric: boolean; cell: (r: ResultRow) => Cell }[] = [
  { head: 'Model', title: 'Model file name', numeric: false, cell: (r) => txt(r.model) },
  { head: 'Type', title: 'GGUF file type', numeric: false, cell: (r) => txt(r.fileType) },
  { head: 'Size', numeric: true, title: 'File size (binary units)', cell: (r) => num(formatBytes(r.sizeBytes), `${r.sizeBytes} bytes`) },
  { head: 'BPW', numeric: true, title: 'Bits per weight', cell: (r) => num(formatBitsPerWeight(r.bitsPerWeight)) },
  { head: 'Routing', numeric: false, title: 'Routing label', cell: (r) => txt(r.routing) },
  { head: 'Experts', numeric: true, title: 'Experts used per token', cell: (r) => num(String(r.experts)) },
  { head: 'k̄', numeric: true, title: 'Experts actually mixed per token, measured (mean over MoE layers)', cell: (r) => (r.expertsPerToken === null || r.expertsPerToken === undefined ? NA : num(fixed(r.expertsPerToken, 3))) },
  { head: 'Scale rule', numeric: false, title: 'Expert-output scale rule', cell: (r) => txt(r.scaleRule) },
  { head: 'PPL', numeric: true, title: 'Perplexity ± standard error (lower is better)', cell: (r) => ({ html: `${escapeHtml(formatPerplexity(r.perplexity))} <span class="err">± ${escapeHtml(formatStderr(r.stderr))}</span>` }) },
  { head: 'ΔPPL %', numeric: true, title: 'Perplexity change vs. the reference row, in percent', cell: (r) => (r.deltaPercent === null ? NA : num(formatDeltaPercent(Number(fixed(r.deltaPercent, 2))))) },
  { head: 'KLD', numeric: true, title: 'Mean KL divergence vs. the reference logits (nats)', cell: (r) => (r.kldMean === null ? NA : num(fixed(r.kldMean, 6))) },
  { head: 'Same\u00a0top', numeric: true, title: "Tokens whose most likely next token equals the reference's, in percent", cell: (r) => (r.sameTopPercent === null ? NA : num(formatPercent(r.sameTopPercent))) },
  { head: 'Tokens/s', numeric: true, title: 'Evaluation throughput (tokens per second) and the CPU threads it was measured with', cell: (r) => num(`${formatTokensPerSecond(r.tokensPerSecond)}${r.threads === null ? '' : ` (-t ${r.threads})`}`) },
];

function td(cell: Cell, numeric: boolean): string {
  const attrs = (numeric ? ' class="num"' : '') + (cell.title === undefined ? '' : ` title="${escapeHtml(cell.title)}"`);
  return `<td${attrs}>${cell.html}</td>`;
}

function resultsTable(rows: readonly ResultRow[]): string {
  const head = COLUMNS.map((c) => `<th scope="col" title="${escapeHtml(c.title)}"${c.numeric ? ' class="num"' : ''}>${escapeHtml(c.head)}</th>`).join('');
  const body = rows.map((r) => `<tr>${COLUMNS.map((c) => td(c.cell(r), c.numeric)).join('')}</tr>`).join('\n');
  return `<table class="results" id="results">\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

function keyValueTable(id: string, entries: [string, string][], valueClass: string): string {
  if (entries.length === 0) return `<p class="empty" id="${id}">None recorded.</p>`;
  const body = entries.map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td class="${valueClass}">${escapeHtml(v)}</td></tr>`).join('\n');
  return `<table class="kv" id="${id}">\n<tbody>\n${body}\n</tbody>\n</table>`;
}

function figure(plot: Plot): string {
  return `<figure class="plot" id="plot-${escapeHtml(plot.name)}" aria-label="${escapeHtml(plot.title)}">\n${plot.svg}\n</figure>`;
}

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 24px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d1d1f; background: #fff; }
main { max-width: 1400px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin: 0 0 8px; }
.grid { display: flex; flex-wrap: wrap; gap: 0 48px; }
.grid > section { flex: 1 1 380px; min-width: 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 6px; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
thead th { background: #f4f5f7; border-bottom: 2px solid #ccc; vertical-align: bottom; position: sticky; top: 0; }
table.kv th { font-weight: 600; white-space: nowrap; }
table.kv td.mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.scroll { overflow-x: auto; }
table.results { min-width: 100%; font-size: 12.5px; }
.err { color: #666; font-size: 11.5px; }
table.results tbody tr:nth-child(even) { background: #fafbfc; }
table.results tbody tr:hover { background: #eef4ff; }
table.results td { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
.na { color: #999; }
.empty { color: #777; font-style: italic; }
.plots { display: flex; flex-direction: column; gap: 24px; }
figure.plot { margin: 0; padding: 8px; border: 1px solid #e5e5e5; border-radius: 6px; background: #fff; }
figure.plot svg { display: block; width: 100%; max-width: 1000px; height: auto; }
footer { margin-top: 40px; color: #777; font-size: 12px; }
@media print { body { padding: 0; } figure.plot { break-inside: avoid; } thead th { position: static; } }
`;

/** The complete page. `plots` are rendered beforehand (renderPlots) so this stays synchronous and pure. */
export function renderHtml(data: ReportData, plots: readonly Plot[]): string {
  const title = escapeHtml(data.title);
  const settings = Object.entries(data.settings).map(([k, v]): [string, string] => [k, String(v)]);
  const fingerprints = Object.entries(data.fingerprints);
  const plotHtml = plots.length === 0 ? '<p class="empty">No plots.</p>' : `<div class="plots">\n${plots.map(figure).join('\n')}\n</div>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${title}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>${title}</h1>
<p class="meta">Created <time datetime="${escapeHtml(data.createdAt)}">${escapeHtml(data.createdAt)}</time> · ${data.rows.length} result row${data.rows.length === 1 ? '' : 's'}</p>
</header>
<div class="grid">
<section>
<h2>Settings</h2>
${keyValueTable('settings', settings, 'val')}
</section>
<section>
<h2>Fingerprints</h2>
${keyValueTable('fingerprints', fingerprints, 'mono')}
</section>
</div>
<h2>Results</h2>
<div class="scroll">
${resultsTable(data.rows)}
</div>
<h2>Plots</h2>
${plotHtml}
<footer>Generated by moe-eval. Full-precision numbers are in results.csv and results.json beside this file.</footer>
</main>
</body>
</html>
`;
}
