/**
 * The heatmaps:
 *  - scan-heatmap:  a sensitivity scan's mean KLD per MoE layer × change (src/scan.ts);
 *  - expert-usage:  MoE layers × experts, the share of calibration tokens routed to each expert, from a
 *                   routing profile (drawn with the pruning plots, src/report/prune.ts).
 */
import type { TopLevelSpec } from 'vega-lite';

import type { ProfileData } from '../profile.js';
import { PLOT_FONT, PLOT_HEIGHT, PLOT_WIDTH, type NamedSpec, plotTitle } from './plot-common.js';
import type { ScanReport } from './types.js';

/** Three significant digits, for a heatmap cell. */
function short(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : String(Number(x.toPrecision(3)));
}

export function scanHeatmap(scan: ScanReport): NamedSpec {
  const cells = scan.layers.flatMap((layer, i) =>
    scan.changes.map((change, j) => ({ layer: `layer ${layer}`, change, kld: scan.kld[i]![j]!, label: short(scan.kld[i]![j]!), delta: scan.deltaPercent[i]![j]! })),
  );
  const max = Math.max(...cells.map((c) => c.kld));
  const layers = scan.layers.map((l) => `layer ${l}`);
  const cellSize = Math.max(28, Math.min(70, Math.floor(420 / Math.max(scan.layers.length, scan.changes.length))));
  const title = 'Layer sensitivity: mean KL divergence with one layer changed';
  const spec: TopLevelSpec = {
    width: Math.max(160, cellSize * scan.changes.length),
    height: cellSize * scan.layers.length,
    padding: 8,
    background: 'white',
    title: plotTitle(title, 'Each cell: only that MoE layer routed differently, every other layer at the model’s own routing'),
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
      font: PLOT_FONT,
      axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', grid: false },
      legend: { labelFontSize: 12, titleFontSize: 12 },
      view: { stroke: null },
    },
  };
  return { name: 'scan-heatmap', title, spec };
}

/** Layers × experts: the share of the layer's calibration tokens routed to each expert (fair share n/N). */
export function usageSpec(p: ProfileData): TopLevelSpec {
  const N = p.model.expertCount;
  const values = p.layers.flatMap((l) => l.expertTokens!.map((t, e) => ({ layer: l.layer, expert: e, share: l.tokens > 0 ? (100 * t) / l.tokens : 0, reap: l.reap?.[e] ?? 0 })));
  const fair = (100 * p.model.expertsUsed) / N;
  // labels dark on the light (high) end of viridis, light on the dark end
  const light = 0.6 * Math.max(...values.map((v) => v.share));
  return {
    width: Math.min(PLOT_WIDTH, Math.max(160, 28 * N)),
    height: Math.min(PLOT_HEIGHT * 1.5, Math.max(80, 22 * p.layers.length)),
    padding: 8,
    background: 'white',
    title: plotTitle('Expert usage on the calibration text', `Share of each layer's tokens routed to each expert (fair share ${fair.toFixed(1)} %); ${p.layers[0]?.tokens ?? 0} tokens per layer${p.layers.length > 1 ? ', the last layer the scored half' : ''}`),
    data: { values },
    encoding: {
      x: { field: 'expert', type: 'ordinal', title: 'Expert', axis: { labelAngle: 0 } },
      y: { field: 'layer', type: 'ordinal', title: 'Layer' },
    },
    layer: [
      { mark: { type: 'rect' }, encoding: { color: { field: 'share', type: 'quantitative', title: 'tokens (%)', scale: { scheme: 'viridis' } } } },
      ...(N <= 32 ? [{ mark: { type: 'text' as const, fontSize: 9 }, encoding: { text: { field: 'share', type: 'quantitative' as const, format: '.0f' }, color: { condition: { test: `datum.share > ${light}`, value: 'black' }, value: 'white' } } }] : []),
    ],
    config: { font: PLOT_FONT, axis: { labelFontSize: 11, titleFontSize: 13, titleFontWeight: 'normal' }, view: { stroke: '#ccc' } },
  };
}
