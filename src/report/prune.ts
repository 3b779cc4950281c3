/**
 * The pruning plots: quality against the fraction of experts kept, one line per criterion (mean KLD
 * when the sweep had a reference, and perplexity), and the expert-usage heatmap (MoE layers × experts,
 * the share of calibration tokens routed to each expert) from the routing profile.
 */
import type { ProfileData } from '../profile.js';
import { type NamedSpec, renderSvg } from './plot-common.js';
import { usageSpec } from './plot-heatmap.js';
import { type LineChart, lineSpec } from './plot-lines.js';
import type { Plot } from './types.js';

/** What a pruning plot needs of a row (PruneRow has it). */
export interface PrunePlotRow {
  by: string;
  keptFraction: number;
  perplexity: number;
  kldMean: number | null;
}

const KEPT_AXIS = 'Routed experts kept (%)';

export function prunePlotSpecs(rows: readonly PrunePlotRow[], profile?: ProfileData): NamedSpec[] {
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

export async function renderPrunePlots(rows: readonly PrunePlotRow[], profile?: ProfileData): Promise<Plot[]> {
  const plots: Plot[] = [];
  for (const { name, title, spec } of prunePlotSpecs(rows, profile)) plots.push({ name, title, svg: await renderSvg(spec) });
  return plots;
}
