/**
 * The pruning plots: quality against the fraction of experts kept, one line per criterion (mean KLD
 * when the sweep had a reference, and perplexity), and the expert-usage heatmap (MoE layers × experts,
 * the share of calibration tokens routed to each expert) from the routing profile.
 */
import type { TopLevelSpec } from 'vega-lite';

import type { ProfileData } from '../profile.js';
import { PLOT_FONT, PLOT_HEIGHT, PLOT_WIDTH, type LineChart, lineSpec, renderSvg } from './plot.js';
import type { Plot } from './types.js';

/** What a pruning plot needs of a row (PruneRow has it). */
export interface PrunePlotRow {
  by: string;
  keptFraction: number;
  perplexity: number;
  kldMean: number | null;
}

const KEPT_AXIS = 'Routed experts kept (%)';

export function prunePlotSpecs(rows: readonly PrunePlotRow[], profile?: ProfileData): { name: string; title: string; spec: TopLevelSpec }[] {
  const charts: LineChart[] = [];
  const withKld = rows.filter((r): r is PrunePlotRow & { kldMean: number } => r.kldMean !== null);
  if (withKld.length > 0) {
    charts.push({
      name: 'prune-kld-vs-kept',
      title: 'Mean KL divergence vs. experts kept',
      subtitle: "Against the unpruned model; one line per ranking criterion; lower is closer",
      xTitle: KEPT_AXIS,
      yTitle: 'Mean KL divergence (nats)',
      seriesTitle: 'Criterion',
      xIntegers: true,
      points: withKld.map((r) => ({ x: 100 * r.keptFraction, y: r.kldMean, series: r.by })),
    });
  }
  charts.push({
    name: 'prune-perplexity-vs-kept',
    title: 'Perplexity vs. experts kept',
    subtitle: 'One line per ranking criterion; lower is better',
    xTitle: KEPT_AXIS,
    yTitle: 'Perplexity (PPL, lower is better)',
    seriesTitle: 'Criterion',
    xIntegers: true,
    points: rows.map((r) => ({ x: 100 * r.keptFraction, y: r.perplexity, series: r.by })),
  });
  const specs = charts.map((c) => ({ name: c.name, title: c.title, spec: lineSpec(c) }));
  if (profile && profile.layers.every((l) => Array.isArray(l.expertTokens))) specs.push({ name: 'expert-usage', title: 'Expert usage', spec: usageSpec(profile) });
  return specs;
}

/** Layers × experts: the share of the layer's calibration tokens routed to each expert (fair share n/N). */
function usageSpec(p: ProfileData): TopLevelSpec {
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
    title: { text: 'Expert usage on the calibration text', subtitle: `Share of each layer's tokens routed to each expert (fair share ${fair.toFixed(1)} %); ${p.layers[0]?.tokens ?? 0} tokens per layer${p.layers.length > 1 ? ', the last layer the scored half' : ''}`, anchor: 'start', fontSize: 16, subtitleFontSize: 12, offset: 10 },
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

export async function renderPrunePlots(rows: readonly PrunePlotRow[], profile?: ProfileData): Promise<Plot[]> {
  const plots: Plot[] = [];
  for (const { name, title, spec } of prunePlotSpecs(rows, profile)) plots.push({ name, title, svg: await renderSvg(spec) });
  return plots;
}
