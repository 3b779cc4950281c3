/**
 * The report's plots, as SVG strings. Each plot is a Vega-Lite spec compiled to Vega and rendered
 * headless (renderer 'none' + toSVG(): no DOM, no canvas, no fonts needed at render time), so the
 * SVG is the charting library's own output, never assembled by hand here.
 *
 * Plots:
 *  - perplexity-vs-bpw:     perplexity against bits per weight, one line per routing label;
 *  - kld-vs-bpw:            mean KLD against bits per weight, one line per routing (rows with a KLD only);
 *  - perplexity-vs-experts: perplexity against experts used, one line per scale rule (only when the
 *                           rows hold more than one experts value; per-layer schedules, which have no
 *                           single count, are left out);
 *  - kld-vs-experts-per-token: mean KLD against k̄ (experts actually mixed per token, measured), one
 *                           marker per row, coloured by routing rule, with the Pareto front (the rows no
 *                           other row beats on both) as a line: quality against experts used;
 *  - scan-heatmap:          a sensitivity scan's mean KLD per MoE layer × change (src/scan.ts).
 */
import { compile, type TopLevelSpec } from 'vega-lite';
import * as vega from 'vega';

import type { Plot, ResultRow, ScanReport } from './types.js';

/** Plot area + axes + legend fit this size, so every plot reads the same at 640×400. */
export const PLOT_WIDTH = 640;
export const PLOT_HEIGHT = 400;
export { FONT as PLOT_FONT };

/**
 * The font the SVGs ask for. Helvetica, Arial and Liberation Sans share one set of glyph widths,
 * so the widths below (Helvetica's AFM metrics) hold wherever one of them is installed: macOS,
 * Windows and most Linux desktops.
 */
const FONT = 'Helvetica, Arial, "Liberation Sans", sans-serif';

// Helvetica advance widths in 1/1000 em for ASCII 32..126.
// prettier-ignore
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space ! " # $ % & ' ( ) * + , - . /
  556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0-9 : ; < = > ?
  1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @ A-O
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P-Z [ \ ] ^ _
  333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // ` a-o
  556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p-z { | } ~
];

/** Text width in px for a Helvetica-metric font; bold runs about 8% wider. Unknown glyphs count 0.6 em, wide (CJK) ones 1 em. */
export function textWidth(text: string, fontSize: number, bold = false): number {
  let units = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    units += HELVETICA[code - 32] ?? (code >= 0x2e80 ? 1000 : 600);
  }
  // A 4% margin covers a viewer that falls back to a slightly wider sans-serif.
  return (units / 1000) * fontSize * (bold ? 1.08 : 1) * 1.04;
}

interface TextItem {
  fontSize?: number | string;
  fontWeight?: number | string;
}
interface TextMetrics {
  width: (item: TextItem, text: unknown) => number;
  estimateWidth: unknown;
}

/**
 * Without the native `canvas` package Vega sizes text by 0.8 em per character, about 50% too wide
 * for Latin text: layouts get cramped and legend labels are cut with "…" long before they run out
 * of room. Vega lets a host replace textMetrics.width (vl-convert does the same), so the estimate is
 * swapped for real glyph widths, once, and only while Vega still uses its own crude estimate.
 */
function useGlyphWidths(): void {
  const metrics = (vega as unknown as { textMetrics?: TextMetrics }).textMetrics;
  if (metrics === undefined || metrics.width !== metrics.estimateWidth) return;
  metrics.width = (item, text) => {
    const size = item.fontSize === undefined ? 11 : Number(item.fontSize) || 0;
    const bold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600;
    return textWidth(text == null ? '' : String(text).trim(), size, bold);
  };
}

/** Above this max/min ratio a linear y axis squashes the small values flat; switch to log. */
const LOG_SPAN = 10;

interface Point {
  x: number;
  y: number;
  series: string;
}

export interface LineChart {
  name: string;
  title: string;
  subtitle: string;
  xTitle: string;
  yTitle: string;
  seriesTitle: string;
  xIntegers?: boolean;
  points: Point[];
}

/** Distinct values in order of first appearance: legends then list series the way the rows do. */
function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** A y scale and, for log-like scales, the tick values to label (Vega's own log ticks crowd or vanish). */
export interface YScale {
  type: 'linear' | 'log' | 'symlog';
  constant?: number;
  domain?: [number, number];
  ticks?: number[];
}

/** 1-2-5 steps covering [min, max] (only powers of ten when that would be more than 10 ticks). */
function logTicks(min: number, max: number): number[] {
  const steps: number[] = [];
  for (let e = Math.floor(Math.log10(min)); steps.length === 0 || steps[steps.length - 1]! < max; e++) {
    // Built from strings so 2 × 0.1 is 0.2, not 0.20000000000000004.
    for (const m of [1, 2, 5]) steps.push(Number(`${m}e${e}`));
  }
  // Keep one step at or below min and one at or above max, so the domain ends on a labelled tick.
  const lo = Math.max(steps.findLastIndex((t) => t <= min), 0);
  const hi = steps.findIndex((t) => t >= max);
  const span = steps.slice(lo, hi + 1);
  if (span.length <= 10) return span;
  const decades: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) decades.push(Number(`1e${e}`));
  return decades;
}

/**
 * The y scale for a set of values: linear unless they span more than LOG_SPAN×. A reference row's
 * KLD is exactly 0, which a log scale cannot show, so with zeros present the span is measured over
 * the positive values and a symlog scale (linear near 0, log above `constant`) keeps the 0 visible.
 */
export function yScaleFor(values: readonly number[]): YScale {
  const positive = values.filter((v) => v > 0);
  if (positive.length < 2 || values.some((v) => v < 0)) return { type: 'linear' };
  const min = Math.min(...positive);
  const max = Math.max(...positive);
  if (max / min <= LOG_SPAN) return { type: 'linear' };
  const ticks = logTicks(min, max);
  const top = ticks[ticks.length - 1]!;
  if (positive.length === values.length) return { type: 'log', domain: [ticks[0]!, top], ticks };
  return { type: 'symlog', constant: min, domain: [0, top], ticks: [0, ...ticks.filter((t) => t >= min)] };
}

/** A line chart's Vega-Lite spec: one line (colour and marker shape) per series. */
export function lineSpec(chart: LineChart): TopLevelSpec {
  const y = yScaleFor(chart.points.map((p) => p.y));
  const series = distinct(chart.points.map((p) => p.series));
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: chart.seriesTitle,
    sort: series,
    // category10 repeats after 10 series; tableau20 keeps up to 20 apart.
    scale: { scheme: series.length > 10 ? 'tableau20' : 'category10' },
  };
  return {
    width: PLOT_WIDTH,
    height: PLOT_HEIGHT,
    autosize: { type: 'fit', contains: 'padding' },
    padding: 8,
    background: 'white',
    title: { text: chart.title, subtitle: chart.subtitle, anchor: 'start', fontSize: 16, subtitleFontSize: 12, offset: 10 },
    data: { values: chart.points },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative',
        title: chart.xTitle,
        scale: { zero: false, nice: true },
        axis: chart.xIntegers ? { tickMinStep: 1, format: 'd' } : { format: '~g' },
      },
      y: {
        field: 'y',
        type: 'quantitative',
        title: y.type === 'linear' ? chart.yTitle : `${chart.yTitle}, log scale`,
        scale: y.type === 'linear' ? { type: 'linear', zero: false } : { type: y.type, domain: y.domain!, nice: false, ...(y.constant === undefined ? {} : { constant: y.constant }) },
        axis: y.ticks === undefined ? { format: '~g' } : { format: '~g', values: y.ticks },
      },
      color,
    },
    layer: [
      // The line connects a series' points in x order (Vega-Lite sorts line marks by x).
      { mark: { type: 'line', strokeWidth: 2 } },
      // A marker shape per series as well as a colour, so the plot survives greyscale printing.
      { mark: { type: 'point', filled: true, size: 70, opacity: 1 }, encoding: { shape: { ...color, scale: {} } } },
    ],
    config: {
      font: FONT,
      axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', grid: true, gridOpacity: 0.6 },
      legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 240, orient: 'right', symbolSize: 90 },
      view: { stroke: '#ccc' },
    },
  };
}

/**
 * A logger for Vega and Vega-Lite that keeps stdout clean: errors still throw (Vega throws them
 * itself), warnings become Node process warnings, which a caller or test can observe.
 */
function quietLogger(): vega.LoggerInterface {
  let level = 2; // vega.Warn
  const logger: vega.LoggerInterface = {
    level(value?: number) {
      if (value === undefined) return level;
      level = value;
      return logger;
    },
    error(...args: unknown[]) {
      throw new Error(`Vega: ${args.map(String).join(' ')}`);
    },
    warn(...args: unknown[]) {
      if (level >= 2) process.emitWarning(args.map(String).join(' '), 'VegaWarning');
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
  };
  return logger;
}

/** Renders one Vega-Lite spec to an SVG string with no DOM. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  useGlyphWidths();
  const logger = quietLogger();
  const vgSpec = compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const BPW_AXIS = 'Bits per weight (bpw)';
const PPL_AXIS = 'Perplexity (PPL, lower is better)';

/**
 * The rows for the experts plot. Each model file (quantization) gives its own curve per scale rule,
 * and six quantizations × four rules in one plot is a tangle, so the plot shows one file: the one
 * swept over the most experts counts, the least quantized on a tie. The PPL-vs-bpw plot already
 * shows the quantizations side by side. If no single file was swept, all rows are shown.
 */
function expertsSweep(rows: readonly ResultRow[]): { subset: ResultRow[]; label: string } {
  let best: { model: string; count: number; bpw: number } | null = null;
  for (const model of distinct(rows.map((r) => r.model))) {
    const own = rows.filter((r) => r.model === model);
    const count = distinct(own.map((r) => r.experts)).length;
    const bpw = Math.max(...own.map((r) => r.bitsPerWeight));
    if (best === null || count > best.count || (count === best.count && bpw > best.bpw)) best = { model, count, bpw };
  }
  const models = distinct(rows.map((r) => r.model)).length;
  if (best === null || best.count < 2 || models === 1) return { subset: [...rows], label: '' };
  const subset = rows.filter((r) => r.model === best.model);
  return { subset, label: `${best.model} (${subset[0]!.fileType})` };
}

/**
 * Rows of the routings evaluated at more than one bits-per-weight: the only ones that make a line
 * against bits per weight (a routing seen at one quantization only would be a lone point, and a
 * legend entry without a line).
 */
function acrossQuantizations<T extends ResultRow>(rows: readonly T[]): T[] {
  return rows.filter((r) => distinct(rows.filter((q) => q.routing === r.routing).map((q) => q.bitsPerWeight)).length > 1);
}

/**
 * The experts plot's points: every scale rule equals the default routing at the model's own expert
 * count (every rule's factor is 1 there), so a rule's line passes through the default's point even
 * where that point was evaluated once, as the default.
 */
function expertsPoints(rows: readonly ResultRow[]): Point[] {
  const points = rows.filter((r) => !isSchedule(r.routing)).map((r) => ({ x: r.experts, y: r.perplexity, series: r.scaleRule }));
  const def = rows.find((r) => r.routing === 'default');
  if (!def) return points;
  for (const rule of distinct(rows.map((r) => r.scaleRule))) {
    if (rule === 'custom' || points.some((p) => p.series === rule && p.x === def.experts)) continue;
    points.push({ x: def.experts, y: def.perplexity, series: rule });
  }
  return points;
}

/** The charts the rows support, as specs (exported for tests and for callers who restyle them). */
export function plotSpecs(rows: readonly ResultRow[], scan?: ScanReport): { name: string; title: string; spec: TopLevelSpec }[] {
  const charts: LineChart[] = [];
  const quantized = acrossQuantizations(rows);
  if (quantized.length > 0) {
    charts.push({
      name: 'perplexity-vs-bpw',
      title: 'Perplexity vs. bits per weight',
      subtitle: 'One line per routing; lower is better',
      xTitle: BPW_AXIS,
      yTitle: PPL_AXIS,
      seriesTitle: 'Routing',
      points: quantized.map((r) => ({ x: r.bitsPerWeight, y: r.perplexity, series: r.routing })),
    });
  }
  // The reference itself has KLD 0, which a log axis cannot place; it is left out (and said so) there.
  const withKld = quantized.filter((r): r is ResultRow & { kldMean: number } => r.kldMean !== null);
  if (withKld.length > 0) {
    const positive = withKld.filter((r) => r.kldMean > 0);
    const log = yScaleFor(positive.map((r) => r.kldMean)).type !== 'linear';
    const shown = log ? positive : withKld;
    charts.push({
      name: 'kld-vs-bpw',
      title: 'Mean KL divergence vs. bits per weight',
      subtitle: `Against the reference logits; one line per routing; lower is closer${log && shown.length < withKld.length ? ' (the reference, KLD 0, is not drawn on the log scale)' : ''}`,
      xTitle: BPW_AXIS,
      yTitle: 'Mean KL divergence (nats)',
      seriesTitle: 'Routing',
      points: shown.map((r) => ({ x: r.bitsPerWeight, y: r.kldMean, series: r.routing })),
    });
  }
  if (distinct(rows.filter((r) => !isSchedule(r.routing)).map((r) => r.experts)).length > 1) {
    const { subset, label } = expertsSweep(rows);
    charts.push({
      name: 'perplexity-vs-experts',
      title: 'Perplexity vs. experts used per token',
      subtitle: label === '' ? 'One line per scale rule; lower is better' : `${label}; one line per scale rule; lower is better`,
      xTitle: 'Experts used per token (count)',
      yTitle: PPL_AXIS,
      seriesTitle: 'Scale rule',
      xIntegers: true,
      points: expertsPoints(subset),
    });
  }
  const specs = charts.map((c) => ({ name: c.name, title: c.title, spec: lineSpec(c) }));
  const pareto = paretoChart(rows);
  if (pareto) specs.push(pareto);
  if (scan) specs.push(heatmap(scan));
  return specs;
}

/** Every plot the rows (and a scan) support, rendered to SVG, in report order. */
export async function renderPlots(rows: readonly ResultRow[], scan?: ScanReport): Promise<Plot[]> {
  const plots: Plot[] = [];
  for (const { name, title, spec } of plotSpecs(rows, scan)) plots.push({ name, title, svg: await renderSvg(spec) });
  return plots;
}

/** Whether a routing label gives experts per layer ('experts=0:1;1-3:2' or 'experts=1,2,2,1'): a schedule, not one count. */
function isSchedule(label: string): boolean {
  return /(^|\s)experts=\S*[:,]/.test(label);
}

/**
 * A routing's rule family, from its label: the options it sets, with the values that vary along a
 * rule's curve (the count, -ser's t, top-p's p, a numeric scale) left out, so 'experts=3
 * expert-scale=uniform' and 'experts=1 expert-scale=uniform' are one family and 'ser=1,0.3' and
 * 'ser=1,0.5' another.
 */
export function routingFamily(label: string): string {
  if (label === 'default') return 'default';
  const parts = label.split(/\s+/).map((part) => {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    if (key === 'experts') return isSchedule(part) ? 'per-layer experts' : 'experts';
    if (key === 'expert-scale' && /^[a-z]/i.test(value)) return `expert-scale=${value}`;
    if (key === 'ser') return `ser ${value.split(',')[0]},t`;
    if (key === 'mask-experts') return 'mask';
    return key;
  });
  // a scale rule at the model's own count (its label names no count) is a point of that rule's curve
  if (parts.some((p) => p.startsWith('expert-scale=')) && !parts.some((p) => p === 'experts' || p === 'per-layer experts')) parts.unshift('experts');
  return parts.join(' ');
}

/** The rows no other row beats on both k̄ and KLD (lower is better on both), in k̄ order. */
export function paretoFront<T extends { x: number; y: number }>(points: readonly T[]): T[] {
  const sorted = [...points].sort((a, b) => a.x - b.x || a.y - b.y);
  const front: T[] = [];
  for (const p of sorted) if (front.length === 0 || p.y < front[front.length - 1]!.y) front.push(p);
  return front;
}

function paretoChart(allRows: readonly ResultRow[]): { name: string; title: string; spec: TopLevelSpec } | undefined {
  // one model file: the one with the most routings measured (the least quantized on a tie); other
  // files' KLD includes their quantization error and would not compare with these
  const measured = allRows.filter((r) => r.kldMean !== null && r.expertsPerToken !== null && r.expertsPerToken !== undefined);
  const models = distinct(measured.map((r) => r.model));
  const pick = models.sort((a, b) => measured.filter((r) => r.model === b).length - measured.filter((r) => r.model === a).length || Math.max(...measured.filter((r) => r.model === b).map((r) => r.bitsPerWeight)) - Math.max(...measured.filter((r) => r.model === a).map((r) => r.bitsPerWeight)))[0];
  const rows = measured.filter((r) => r.model === pick);
  const all = rows
    .filter((r): r is ResultRow & { kldMean: number; expertsPerToken: number } => r.kldMean !== null && r.expertsPerToken !== null)
    .map((r) => ({ x: r.expertsPerToken, y: Math.max(0, r.kldMean), series: routingFamily(r.routing), routing: r.routing }));
  if (all.length < 2 || distinct(all.map((p) => p.x)).length < 2) return undefined;
  // with the reference's KLD 0 among the points, a symlog scale keeps it visible (yScaleFor)
  const y = yScaleFor(all.map((p) => p.y));
  const points = all;
  const front = paretoFront(points).map((p) => ({ ...p, series: 'Pareto front' }));
  const series = distinct(points.map((p) => p.series));
  const color = { field: 'series', type: 'nominal' as const, title: 'Rule', sort: series, scale: { scheme: series.length > 10 ? 'tableau20' : 'category10' } };
  const xAxis = { field: 'x', type: 'quantitative' as const, title: 'k̄: experts mixed per token (measured, mean over MoE layers)', scale: { zero: false, nice: true }, axis: { format: '~g' } };
  const yAxis = {
    field: 'y',
    type: 'quantitative' as const,
    title: y.type === 'linear' ? 'Mean KL divergence (nats)' : 'Mean KL divergence (nats), log scale',
    scale: y.type === 'linear' ? { type: 'linear' as const, zero: true } : { type: y.type, domain: y.domain!, nice: false, ...(y.constant === undefined ? {} : { constant: y.constant }) },
    axis: y.ticks === undefined ? { format: '~g' } : { format: '~g', values: y.ticks },
  };
  const spec: TopLevelSpec = {
    width: PLOT_WIDTH,
    height: PLOT_HEIGHT,
    autosize: { type: 'fit', contains: 'padding' },
    padding: 8,
    background: 'white',
    title: {
      text: 'Mean KL divergence vs. experts used per token',
      subtitle: [`Every routing evaluated${models.length > 1 ? ` on ${pick} (${rows[0]!.fileType})` : ''}, against the same reference; lower is closer`, 'Dashed: the Pareto front (no other routing is both cheaper in k̄ and closer)'],
      anchor: 'start',
      fontSize: 16,
      subtitleFontSize: 12,
      offset: 10,
    },
    layer: [
      { data: { values: front }, mark: { type: 'line', interpolate: 'step-after', color: '#888', strokeWidth: 2, strokeDash: [6, 3] }, encoding: { x: xAxis, y: yAxis } },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 80, opacity: 0.9 },
        encoding: { x: xAxis, y: yAxis, color, shape: { ...color, scale: {} }, tooltip: [{ field: 'routing', type: 'nominal' }, { field: 'x', type: 'quantitative', title: 'k̄' }, { field: 'y', type: 'quantitative', title: 'KLD' }] },
      },
    ],
    config: {
      font: FONT,
      axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', grid: true, gridOpacity: 0.6 },
      legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 240, orient: 'right', symbolSize: 90 },
      view: { stroke: '#ccc' },
    },
  };
  return { name: 'kld-vs-experts-per-token', title: 'Mean KL divergence vs. experts used per token', spec };
}

/** Three significant digits, for a heatmap cell. */
function short(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : String(Number(x.toPrecision(3)));
}

function heatmap(scan: ScanReport): { name: string; title: string; spec: TopLevelSpec } {
  const cells = scan.layers.flatMap((layer, i) =>
    scan.changes.map((change, j) => ({ layer: `layer ${layer}`, change, kld: scan.kld[i]![j]!, label: short(scan.kld[i]![j]!), delta: scan.deltaPercent[i]![j]! })),
  );
  const max = Math.max(...cells.map((c) => c.kld));
  const layers = scan.layers.map((l) => `layer ${l}`);
  const cellSize = Math.max(28, Math.min(70, Math.floor(420 / Math.max(scan.layers.length, scan.changes.length))));
  const spec: TopLevelSpec = {
    width: Math.max(160, cellSize * scan.changes.length),
    height: cellSize * scan.layers.length,
    padding: 8,
    background: 'white',
    title: {
      text: 'Layer sensitivity: mean KL divergence with one layer changed',
      subtitle: 'Each cell: only that MoE layer routed differently, every other layer at the model’s own routing',
      anchor: 'start',
      fontSize: 16,
      subtitleFontSize: 12,
      offset: 10,
    },
    data: { values: cells },
    encoding: {
      x: { field: 'change', type: 'ordinal', sort: scan.changes, title: 'Change', axis: { labelAngle: 0 } },
      y: { field: 'layer', type: 'ordinal', sort: layers, title: 'MoE layer' },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: { field: 'kld', type: 'quantitative', title: 'mean KLD', scale: { scheme: 'orangered', domain: [0, max > 0 ? max : 1] }, legend: { format: '~g' } },
          tooltip: [{ field: 'layer' }, { field: 'change' }, { field: 'kld', type: 'quantitative', title: 'mean KLD' }, { field: 'delta', type: 'quantitative', title: 'ΔPPL %', format: '.2f' }],
        },
      },
      {
        mark: { type: 'text', fontSize: cellSize >= 44 ? 12 : 10 },
        encoding: {
          text: { field: 'label' },
          color: { condition: { test: `datum.kld > ${max * 0.55}`, value: 'white' }, value: 'black' },
        },
      },
    ],
    config: {
      font: FONT,
      axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', grid: false },
      legend: { labelFontSize: 12, titleFontSize: 12 },
      view: { stroke: null },
    },
  };
  return { name: 'scan-heatmap', title: 'Layer sensitivity: mean KL divergence with one layer changed', spec };
}
