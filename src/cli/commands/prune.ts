/** moe-eval prune: rank experts on calibration text, then evaluate pruning ratios × criteria as runtime masks on one loaded model. */
import { basename, resolve } from 'node:path';
import type { Argv } from 'yargs';

import { formatDeltaPercent, formatKld, formatPercent, formatPerplexity, formatStderr, formatTokensPerSecond } from '../../format.js';
import { RoutingProfile } from '../../profile.js';
import { PRUNE_CRITERIA, PRUNE_SCOPES, type PruneCriterion, type PruneScope } from '../../prune.js';
import { type PruneSweepResult, pruneSweep } from '../../prune-sweep.js';
import { writeReport } from '../../report/index.js';
import { renderPrunePlots } from '../../report/prune.js';
import type { ReportData } from '../../report/types.js';
import type { Model } from '../../model.js';
import { contextFlags, intFlag, jsonFlag, modelFlags, stringFlag, textFlags } from '../flags.js';
import { contextFromArgs, loadModelFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { notice, progress } from '../progress.js';

export const command = 'prune';
export const describe = 'rank experts on calibration text (REAP, frequency, weight, random) and evaluate pruning ratios as runtime masks on one loaded model; resumable JSONL, table, report';
export const builder = (y: Argv) =>
  jsonFlag(textFlags(contextFlags(modelFlags(y))))
    .option('calibration-file', { alias: 'calibration', type: 'string', describe: 'text the experts are ranked on (calibrated once; the profile is kept beside --out)' })
    .option('profile', { type: 'string', describe: 'a routing profile from `moe-eval calibrate` (version 3) instead of --calibration-file' })
    .option('calibration-chunks', { type: 'string', describe: 'calibrate on at most this many chunks' })
    .option('ratios', { type: 'string', array: true, default: ['0,0.125,0.25,0.5'], describe: 'fractions of experts removed per layer, each in [0, 1) (commas or spaces)' })
    .option('by', { type: 'string', array: true, default: ['reap,frequency,random'], describe: `ranking criteria: ${PRUNE_CRITERIA.join(', ')} (commas or spaces)` })
    .option('scope', { type: 'string', default: 'per-layer', describe: 'per-layer (the same count from every layer) or global (one ranking over all layers)' })
    .option('seed', { type: 'string', describe: "seed of the 'random' criterion (default 0)" })
    .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'results file (JSONL, created with its folder); rerunning with it resumes' })
    .option('kld', { type: 'boolean', default: false, describe: "KL-divergence against the unpruned model (its base is written once beside --out)" })
    .option('kl-divergence-base', { type: 'string', describe: 'KL-divergence against this base file instead' })
    .option('report', { type: 'string', describe: 'folder for report.html, results.json, results.csv and the plots' })
    .example('$0 prune -m model.gguf -f test.txt --calibration-file calib.txt -o prune.jsonl --kld --report reports/prune', '4 ratios × 3 criteria on one load')
    .example('$0 prune -m model.gguf -f test.txt --profile profile.json -o prune.jsonl --ratios 0.25 0.5 --by reap weight', 'rank from a saved profile');

/** prune's own option names → its flags, for messages. */
export const flagNames = { ratios: '--ratios', by: '--by', scope: '--scope', seed: '--seed', calibration: '--calibration-file', calibrationChunks: '--calibration-chunks' };

function list(a: Record<string, unknown>, key: string): string[] {
  const v = a[key];
  return (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(/[\s,]+/)).filter(Boolean);
}

function ratiosFrom(a: Record<string, unknown>): number[] {
  return list(a, 'ratios').map((t) => {
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) throw new TypeError(`Expected a number in [0, 1) for --ratios but received ${JSON.stringify(t)}`);
    const x = Number(t);
    if (x < 0 || x >= 1) throw new RangeError(`Expected a fraction of experts removed in [0, 1) for --ratios but received ${JSON.stringify(t)}`);
    return x;
  });
}

/** The report of a pruning sweep: its table as result rows, the pruning plots and the usage heatmap. */
export async function writePruneReport(dir: string, model: Model, r: PruneSweepResult, extra: Record<string, string | number | boolean> = {}): Promise<Awaited<ReturnType<typeof writeReport>>> {
  const info = model.info;
  const base = r.rows.find((x) => x.ratio === 0) ?? null;
  const data: ReportData = {
    title: `moe-eval prune: ${basename(model.path)}`,
    createdAt: new Date().toISOString(),
    settings: { model: basename(model.path), scope: r.scope, experts: info.expertCount, expertsPerToken: info.expertsUsed, calibrationTokens: r.profile.data.text.scoredTokens, results: r.out, ...extra },
    fingerprints: { model: r.profile.data.model.fingerprint, calibrationText: r.profile.data.text.fingerprint, evaluationText: r.sweep.rows[0]?.text ?? '' },
    rows: r.rows.map((x) => ({
      model: basename(model.path),
      fileType: info.fileType,
      sizeBytes: info.sizeBytes,
      bitsPerWeight: info.bitsPerWeight,
      routing: `${x.by} ${(100 * x.ratio).toFixed(1)} % pruned: ${x.routing}`,
      experts: info.expertsUsed,
      scaleRule: x.by,
      perplexity: x.perplexity,
      stderr: x.stderr,
      deltaPercent: base ? (100 * (x.perplexity - base.perplexity)) / base.perplexity : null,
      kldMean: x.kldMean,
      sameTopPercent: x.sameTop === null ? null : 100 * x.sameTop,
      tokensPerSecond: x.tokensPerSecond,
      threads: x.threads,
    })),
  };
  return writeReport(dir, data, await renderPrunePlots(r.rows, r.profile.data));
}

export function pruneTable(r: PruneSweepResult): string {
  const base = r.rows.find((x) => x.ratio === 0);
  const withKld = r.rows.some((x) => x.kldMean !== null);
  const threads = [...new Set(r.rows.map((x) => x.threads))].join(',');
  return table(
    ['criterion', 'pruned', 'experts kept', 'PPL', '±', 'ΔPPL', ...(withKld ? ['mean KLD', 'same top'] : []), `tokens/s (-t ${threads})`],
    r.rows.map((x) => [
      x.by,
      formatPercent(100 * x.ratio),
      formatPercent(100 * x.keptFraction),
      formatPerplexity(x.perplexity),
      formatStderr(x.stderr),
      base ? formatDeltaPercent((100 * (x.perplexity - base.perplexity)) / base.perplexity) : '-',
      ...(withKld ? [formatKld(x.kldMean), formatPercent(x.sameTop === null ? null : 100 * x.sameTop)] : []),
      formatTokensPerSecond(x.tokensPerSecond),
    ]),
  );
}

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const input = await textFromArgs(a);
  const ratios = ratiosFrom(a);
  const by = list(a, 'by') as PruneCriterion[];
  for (const c of by) if (!PRUNE_CRITERIA.includes(c)) throw new TypeError(`Expected one of ${PRUNE_CRITERIA.join(', ')} for --by but received ${JSON.stringify(c)}`);
  const scope = String(a.scope) as PruneScope;
  if (!PRUNE_SCOPES.includes(scope)) throw new TypeError(`Expected per-layer or global for --scope but received ${JSON.stringify(scope)}`);
  const seed = intFlag(a, 'seed');
  const calibrationChunks = intFlag(a, 'calibration-chunks');
  const calibrationFile = stringFlag(a, 'calibration-file');
  const profileFile = stringFlag(a, 'profile');
  if ((calibrationFile === undefined) === (profileFile === undefined)) throw new TypeError('Give --calibration-file (text to rank the experts on) or --profile (a saved routing profile), one of them');
  const base = stringFlag(a, 'kl-divergence-base');
  if (base && a.kld) throw new TypeError('--kld and --kl-divergence-base both name a reference; give one');
  const profile = profileFile ? await RoutingProfile.load(profileFile) : undefined;
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('prune', !a.json);
  try {
    const r = await pruneSweep(model, {
      ...input,
      ...contextFromArgs(a),
      ...(profile ? { profile } : { calibration: { file: calibrationFile! } }),
      ...(calibrationChunks === undefined ? {} : { calibrationChunks }),
      ratios,
      by,
      scope,
      ...(seed === undefined ? {} : { seed }),
      out: stringFlag(a, 'out')!,
      ...(base ? { reference: base } : a.kld ? { reference: 'default' } : {}),
      signal,
      onCalibrate: (p) => bar.chunks(p.chunksDone, p.chunksTotal, 'calibrating'),
      onProgress: (p) => {
        bar.points(Math.max(0, p.point - 1), p.points, p.routing);
        bar.chunks(p.chunksDone, p.chunksTotal);
      },
      onPoint: (row, done, total) => bar.points(done, total, `PPL ${formatPerplexity(row.perplexity)}`),
    });
    bar.stop();
    const coverage = r.profile.coverage();
    if (coverage.below.length > 0) {
      notice(`${coverage.below.length} of ${r.profile.data.layers.length * r.profile.expertCount} experts got fewer than ${coverage.minTokens} calibration tokens (their ranking is noise): ${coverage.below.slice(0, 8).map((x) => `layer ${x.layer} expert ${x.expert} (${x.tokens})`).join(', ')}${coverage.below.length > 8 ? ', …' : ''}; calibrate on more text`);
    }
    const reportDir = stringFlag(a, 'report');
    const written = reportDir ? await writePruneReport(resolve(reportDir), model, r) : undefined;
    if (a.json) {
      printJson({ out: r.out, profile: r.profilePath, calibrated: r.calibrated, scope: r.scope, coverage, rows: r.rows, resumed: r.sweep.resumed, evaluated: r.sweep.evaluated, ...(written ? { report: written } : {}) });
      return;
    }
    process.stdout.write(pruneTable(r) + '\n');
    process.stdout.write(`${r.sweep.evaluated} evaluated, ${r.sweep.resumed} already in ${r.out}${r.profilePath ? `; profile ${r.calibrated ? 'written to' : 'reused from'} ${r.profilePath}` : ''}\n`);
    if (written) process.stdout.write(`report: ${written.html}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}
