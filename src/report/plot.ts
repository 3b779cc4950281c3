/**
 * The report's plots, as SVG strings. Each plot is a Vega-Lite spec compiled to Vega and rendered
 * headless (renderer 'none' + toSVG(): no DOM, no canvas, no fonts needed at render time), so the
 * SVG is the charting library's own output, never assembled by hand here.
 *
 * Plots:
 *  - perplexity-vs-bpw:     perplexity against bits per weight, one line per routing label;
 *  - kld-vs-bpw:            mean KLD against bits per weight, one line per routing (rows with a KLD only);
 *  - perplexity-vs-experts: perplexity against experts used, one line per scale rule (only when the
 *                           rows hold more than one experts value).
 */
import { compile, type TopLevelSpec } from 'vega-lite';
import { parse, View, type LoggerInterface } from 'vega';

import type { Plot, ResultRow } from './types.js';

/** Plot area + axes + legend fit this size, so every plot reads the same at 640×400. */
export const PLOT_WIDTH = 640;
export const PLOT_HEIGHT = 400;

/** Above this max/min ratio a linear y axis squashes the small values flat; switch to log. */
const LOG_SPAN = 10;

interface Point {
  x: number;
  y: number;
  series: string;
  /** Set only when a plot must tell file types apart inside one series (dashed lines). */
  dash?: string;
}

interface LineChart {
  name: string;
  title: string;
  subtitle: string;
  xTitle: string;
  yTitle: string;
  seriesTitle: string;
  dashTitle?: string;
  xIntegers?: boolean;
  points: Point[];
}

/** Distinct values in order of first appearance: legends then list series the way the rows do. */
function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/**
 * The y scale for a set of values: linear unless they span more than LOG_SPAN×. A reference row's
 * KLD is exactly 0, which a log scale cannot show, so with zeros present the span is measured over
 * the positive values and a symlog scale (linear near 0, log above `constant`) is used instead.
 */
export function yScaleFor(values: readonly number[]): { type: 'linear'; zero: false } | { type: 'log' } | { type: 'symlog'; constant: number } {
  const positive = values.filter((v) => v > 0);
  const allPositive = positive.length === values.length;
  if (positive.length < 2) return { type: 'linear', zero: false };
  const min = Math.min(...positive);
  const max = Math.max(...positive);
  if (max / min <= LOG_SPAN) return { type: 'linear', zero: false };
  if (allPositive) return { type: 'log' };
  if (values.some((v) => v < 0)) return { type: 'linear', zero: false };
  return { type: 'symlog', constant: min };
}

function lineSpec(chart: LineChart): TopLevelSpec {
  const series = distinct(chart.points.map((p) => p.series));
  const dashes = distinct(chart.points.flatMap((p) => (p.dash === undefined ? [] : [p.dash])));
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: chart.seriesTitle,
    sort: series,
    // category10 repeats after 10 series; tableau20 keeps up to 20 apart.
    scale: { scheme: series.length > 10 ? 'tableau20' : 'category10' },
  };
  const dash =
    dashes.length > 1 ? { strokeDash: { field: 'dash', type: 'nominal' as const, title: chart.dashTitle ?? 'Variant', sort: dashes } } : {};
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
        title: chart.yTitle,
        scale: yScaleFor(chart.points.map((p) => p.y)),
        axis: { format: '~g' },
      },
      color,
    },
    layer: [
      // The line connects a series' points in x order (Vega-Lite sorts line marks by x).
      { mark: { type: 'line', strokeWidth: 2 }, encoding: { ...dash } },
      // A marker shape per series as well as a colour, so the plot survives greyscale printing.
      { mark: { type: 'point', filled: true, size: 70, opacity: 1 }, encoding: { shape: { ...color, scale: {} } } },
    ],
    config: {
      font: 'sans-serif',
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
function quietLogger(): LoggerInterface {
  let level = 2; // vega.Warn
  const logger: LoggerInterface = {
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
  const logger = quietLogger();
  const vgSpec = compile(spec, { logger }).spec;
  const view = new View(parse(vgSpec), { renderer: 'none', logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const BPW_AXIS = 'Bits per weight (bpw)';
const PPL_AXIS = 'Perplexity (PPL, lower is better)';

/** The charts the rows support, as specs (exported for tests and for callers who restyle them). */
export function plotSpecs(rows: readonly ResultRow[]): { name: string; title: string; spec: TopLevelSpec }[] {
  const charts: LineChart[] = [
    {
      name: 'perplexity-vs-bpw',
      title: 'Perplexity vs. bits per weight',
      subtitle: 'One line per routing; lower is better',
      xTitle: BPW_AXIS,
      yTitle: PPL_AXIS,
      seriesTitle: 'Routing',
      points: rows.map((r) => ({ x: r.bitsPerWeight, y: r.perplexity, series: r.routing })),
    },
  ];
  const withKld = rows.filter((r): r is ResultRow & { kldMean: number } => r.kldMean !== null);
  if (withKld.length > 0) {
    charts.push({
      name: 'kld-vs-bpw',
      title: 'Mean KL divergence vs. bits per weight',
      subtitle: 'Against the reference logits; one line per routing; lower is closer',
      xTitle: BPW_AXIS,
      yTitle: 'Mean KL divergence (nats)',
      seriesTitle: 'Routing',
      points: withKld.map((r) => ({ x: r.bitsPerWeight, y: r.kldMean, series: r.routing })),
    });
  }
  if (distinct(rows.map((r) => r.experts)).length > 1) {
    // Several quantizations at one experts count would zigzag inside one line; dash them apart.
    const manyTypes = distinct(rows.map((r) => r.fileType)).length > 1;
    charts.push({
      name: 'perplexity-vs-experts',
      title: 'Perplexity vs. experts used per token',
      subtitle: manyTypes ? 'One line per scale rule and file type; lower is better' : 'One line per scale rule; lower is better',
      xTitle: 'Experts used per token (count)',
      yTitle: PPL_AXIS,
      seriesTitle: 'Scale rule',
      dashTitle: 'File type',
      xIntegers: true,
      points: rows.map((r) => ({ x: r.experts, y: r.perplexity, series: r.scaleRule, ...(manyTypes ? { dash: r.fileType } : {}) })),
    });
  }
  return charts.map((c) => ({ name: c.name, title: c.title, spec: lineSpec(c) }));
}

/** Every plot the rows support, rendered to SVG, in report order. */
export async function renderPlots(rows: readonly ResultRow[]): Promise<Plot[]> {
  const plots: Plot[] = [];
  for (const { name, title, spec } of plotSpecs(rows)) plots.push({ name, title, svg: await renderSvg(spec) });
  return plots;
}
