/**
 * The line charts: one line (colour and marker shape) per series. The report's own (from result rows):
 *  - perplexity-vs-bpw:     perplexity against bits per weight, one line per routing label;
 *  - kld-vs-bpw:            mean KLD against bits per weight, one line per routing (rows with a KLD only);
 *  - perplexity-vs-experts: perplexity against experts used, one line per scale rule (only when the
 *                           rows hold more than one experts value; per-layer schedules, which have no
 *                           single count, are left out).
 * lineSpec() also draws the pruning plots (src/report/prune.ts).
 */
import type { TopLevelSpec } from 'vega-lite';

import { PLOT_HEIGHT, PLOT_WIDTH, chartConfig, distinct, isSchedule, plotTitle, seriesColor, yEncoding, yScaleFor } from './plot-common.js';
import type { ResultRow } from './types.js';

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

/** A line chart's Vega-Lite spec: one line (colour and marker shape) per series. */
export function lineSpec(chart: LineChart): TopLevelSpec {
  const y = yScaleFor(chart.points.map((p) => p.y));
  const color = seriesColor(distinct(chart.points.map((p) => p.series)), chart.seriesTitle);
  return {
    width: PLOT_WIDTH,
    height: PLOT_HEIGHT,
    autosize: { type: 'fit', contains: 'padding' },
    padding: 8,
    background: 'white',
    title: plotTitle(chart.title, chart.subtitle),
    data: { values: chart.points },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative',
        title: chart.xTitle,
        scale: { zero: false, nice: true },
        axis: chart.xIntegers ? { tickMinStep: 1, format: 'd' } : { format: '~g' },
      },
      y: yEncoding(y, chart.yTitle, false),
      color,
    },
    layer: [
      // The line connects a series' points in x order (Vega-Lite sorts line marks by x).
      { mark: { type: 'line', strokeWidth: 2 } },
      // A marker shape per series as well as a colour, so the plot survives greyscale printing.
      { mark: { type: 'point', filled: true, size: 70, opacity: 1 }, encoding: { shape: { ...color, scale: {} } } },
    ],
    config: chartConfig(),
  };
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

/** The line charts the rows support, in report order. */
export function lineCharts(rows: readonly ResultRow[]): LineChart[] {
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
  return charts;
}
