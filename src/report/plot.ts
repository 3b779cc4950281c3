/**
 * The report's plots, as SVG strings: which plots the rows (and a scan) support, in report order.
 * Each family lives in its own file, over the shared size, font, scales and renderer of plot-common.ts:
 *  - plot-lines.ts:   perplexity-vs-bpw, kld-vs-bpw, perplexity-vs-experts (and the pruning lines);
 *  - plot-pareto.ts:  kld-vs-experts-per-token, mean KLD against k̄ with the Pareto front;
 *  - plot-heatmap.ts: scan-heatmap (a sensitivity scan, src/scan.ts) and the expert-usage heatmap.
 */
import { type NamedSpec, renderSvg } from './plot-common.js';
import { scanHeatmap } from './plot-heatmap.js';
import { lineCharts, lineSpec } from './plot-lines.js';
import { paretoChart } from './plot-pareto.js';
import type { Plot, ResultRow, ScanReport } from './types.js';

export { PLOT_FONT, PLOT_HEIGHT, PLOT_WIDTH, type YScale, renderSvg, textWidth, yScaleFor } from './plot-common.js';
export { type LineChart, lineSpec } from './plot-lines.js';
export { paretoFront, routingFamily } from './plot-pareto.js';

/** The charts the rows support, as specs (exported for tests and for callers who restyle them). */
export function plotSpecs(rows: readonly ResultRow[], scan?: ScanReport): NamedSpec[] {
  const specs = lineCharts(rows).map((c) => ({ name: c.name, title: c.title, spec: lineSpec(c) }));
  const pareto = paretoChart(rows);
  if (pareto) specs.push(pareto);
  if (scan) specs.push(scanHeatmap(scan));
  return specs;
}

/** Every plot the rows (and a scan) support, rendered to SVG, in report order. */
export async function renderPlots(rows: readonly ResultRow[], scan?: ScanReport): Promise<Plot[]> {
  const plots: Plot[] = [];
  for (const { name, title, spec } of plotSpecs(rows, scan)) plots.push({ name, title, svg: await renderSvg(spec) });
  return plots;
}
