/**
 * What every plot of the report shares: the size, the font and its glyph widths, the y scale (linear,
 * log or symlog with labelled ticks), the series colours, the title and chart styles, and the headless
 * renderer (a Vega-Lite spec compiled to Vega and rendered with renderer 'none' + toSVG(): no DOM, no
 * canvas, no fonts needed at render time, so the SVG is the charting library's own output, never
 * assembled by hand here). The plot families are plot-lines.ts, plot-pareto.ts and plot-heatmap.ts.
 */
import { compile, type TopLevelSpec } from 'vega-lite';
import * as vega from 'vega';

import { labelPart } from '../routing-grammar.js';

/** Plot area + axes + legend fit this size, so every plot reads the same at 640×400. */
export const PLOT_WIDTH = 640;
export const PLOT_HEIGHT = 400;
export { FONT as PLOT_FONT };

/** One plot's spec with the file stem (`name`) and heading (`title`) it is written under. */
export interface NamedSpec {
  name: string;
  title: string;
  spec: TopLevelSpec;
}

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

/** Distinct values in order of first appearance: legends then list series the way the rows do. */
export function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** Above this max/min ratio a linear y axis squashes the small values flat; switch to log. */
const LOG_SPAN = 10;

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

/** The y encoding of field `y` on scale `y`: titled ", log scale" when it is not linear; a linear one starts at 0 when `zero`. */
export function yEncoding(y: YScale, title: string, zero: boolean) {
  return {
    field: 'y',
    type: 'quantitative' as const,
    title: y.type === 'linear' ? title : `${title}, log scale`,
    scale: y.type === 'linear' ? { type: 'linear' as const, zero } : { type: y.type, domain: y.domain!, nice: false, ...(y.constant === undefined ? {} : { constant: y.constant }) },
    axis: y.ticks === undefined ? { format: '~g' } : { format: '~g', values: y.ticks },
  };
}

/** Colour by field `series`, legend in `series` order (category10 repeats after 10 series; tableau20 keeps up to 20 apart). */
export function seriesColor(series: readonly string[], title: string) {
  return { field: 'series', type: 'nominal' as const, title, sort: [...series], scale: { scheme: series.length > 10 ? 'tableau20' : 'category10' } };
}

/** Every plot's heading: a title with a subtitle (a line or several) under it, left-aligned. */
export function plotTitle(text: string, subtitle: string | string[]) {
  return { text, subtitle, anchor: 'start' as const, fontSize: 16, subtitleFontSize: 12, offset: 10 };
}

/** The style of the charts with x/y axes and a legend (lines and the Pareto plot). */
export function chartConfig() {
  return {
    font: FONT,
    axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal' as const, grid: true, gridOpacity: 0.6 },
    legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 240, orient: 'right' as const, symbolSize: 90 },
    view: { stroke: '#ccc' },
  };
}

const SCHEDULE = new RegExp(`(^|\\s)${labelPart('experts', '')}\\S*[:,]`);

/** Whether a routing label gives experts per layer ('experts=0:1;1-3:2' or 'experts=1,2,2,1'): a schedule, not one count. */
export function isSchedule(label: string): boolean {
  return SCHEDULE.test(label);
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
