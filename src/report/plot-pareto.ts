/**
 * kld-vs-experts-per-token: mean KLD against k̄ (experts actually mixed per token, measured), one
 * marker per row, coloured by routing rule, with the Pareto front (the rows no other row beats on
 * both) as a line: quality against experts used.
 */
import { ROUTING_FLAGS, labelPart } from '../routing-grammar.js';
import { PLOT_HEIGHT, PLOT_WIDTH, type NamedSpec, chartConfig, distinct, isSchedule, plotTitle, seriesColor, yEncoding, yScaleFor } from './plot-common.js';
import type { ResultRow } from './types.js';

/**
 * A routing's rule family, from its label (the routing grammar's label form, src/routing-grammar.ts): the options it sets, with the values that vary along a
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
    if (key === ROUTING_FLAGS.experts) return isSchedule(part) ? 'per-layer experts' : 'experts';
    if (key === ROUTING_FLAGS.expertScale && /^[a-z]/i.test(value)) return labelPart('expertScale', value);
    if (key === ROUTING_FLAGS.ser) return `ser ${value.split(',')[0]},t`;
    if (key === ROUTING_FLAGS.maskExperts) return 'mask';
    return key;
  });
  // a scale rule at the model's own count (its label names no count) is a point of that rule's curve
  if (parts.some((p) => p.startsWith(labelPart('expertScale', ''))) && !parts.some((p) => p === 'experts' || p === 'per-layer experts')) parts.unshift('experts');
  return parts.join(' ');
}

/** The rows no other row beats on both k̄ and KLD (lower is better on both), in k̄ order. */
export function paretoFront<T extends { x: number; y: number }>(points: readonly T[]): T[] {
  const sorted = [...points].sort((a, b) => a.x - b.x || a.y - b.y);
  const front: T[] = [];
  for (const p of sorted) if (front.length === 0 || p.y < front[front.length - 1]!.y) front.push(p);
  return front;
}

/** The plot, when the rows hold at least two points with a KLD and a k̄ at two k̄ values. */
export function paretoChart(allRows: readonly ResultRow[]): NamedSpec | undefined {
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
  const color = seriesColor(distinct(points.map((p) => p.series)), 'Rule');
  const xAxis = { field: 'x', type: 'quantitative' as const, title: 'k̄: experts mixed per token (measured, mean over MoE layers)', scale: { zero: false, nice: true }, axis: { format: '~g' } };
  const yAxis = yEncoding(y, 'Mean KL divergence (nats)', true);
  const title = 'Mean KL divergence vs. experts used per token';
  return {
    name: 'kld-vs-experts-per-token',
    title,
    spec: {
      width: PLOT_WIDTH,
      height: PLOT_HEIGHT,
      autosize: { type: 'fit', contains: 'padding' },
      padding: 8,
      background: 'white',
      title: plotTitle(title, [`Every routing evaluated${models.length > 1 ? ` on ${pick} (${rows[0]!.fileType})` : ''}, against the same reference; lower is closer`, 'Dashed: the Pareto front (no other routing is both cheaper in k̄ and closer)']),
      layer: [
        { data: { values: front }, mark: { type: 'line', interpolate: 'step-after', color: '#888', strokeWidth: 2, strokeDash: [6, 3] }, encoding: { x: xAxis, y: yAxis } },
        {
          data: { values: points },
          mark: { type: 'point', filled: true, size: 80, opacity: 0.9 },
          encoding: { x: xAxis, y: yAxis, color, shape: { ...color, scale: {} }, tooltip: [{ field: 'routing', type: 'nominal' }, { field: 'x', type: 'quantitative', title: 'k̄' }, { field: 'y', type: 'quantitative', title: 'KLD' }] },
        },
      ],
      config: chartConfig(),
    },
  };
}
