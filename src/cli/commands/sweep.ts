/** moe-eval sweep: a routing grid on one loaded model, resumable (JSONL), with optional KL-divergence. */
import { basename, resolve } from 'node:path';
import type { Argv } from 'yargs';

import { formatKld, formatPercent, formatPerplexity, formatStderr, formatTokensPerSecond } from '../../format.js';
import type { Model } from '../../model.js';
import { writeReport } from '../../report/index.js';
import type { ReportData, ResultRow } from '../../report/types.js';
import { type SweepResult, sweep, sweepStrategy } from '../../sweep.js';
import { contextFlags, intFlag, jsonFlag, kldTopKFlag, modelFlags, numberFlag, routingFlags, stringFlag, textFlags } from '../flags.js';
import { contextFromArgs, loadModelFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { notice, progress } from '../progress.js';
import { routingGridFromArgs } from '../routing-args.js';

export const command = 'sweep';
export const describe = 'evaluate every combination of routing flag values on one loaded model; results append to a JSONL file and a rerun resumes';
export const builder = (y: Argv) =>
  kldTopKFlag(jsonFlag(routingFlags(textFlags(contextFlags(modelFlags(y))))))
    .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'results file (JSONL, created with its folder); rerunning with it resumes' })
    .option('kld', { type: 'boolean', default: false, describe: "KL-divergence against the model's own routing (its base is written once beside --out)" })
    .option('kl-divergence-base', { type: 'string', describe: 'KL-divergence against this base file instead' })
    .option('hellaswag-file', { type: 'string', describe: "also HellaSwag accuracy at every point, with flips against the model's own routing" })
    .option('winogrande-file', { type: 'string', describe: "also Winogrande accuracy at every point, with flips against the model's own routing" })
    .option('multiple-choice-file', { type: 'string', describe: "also multiple-choice accuracy at every point, with flips against the model's own routing" })
    .option('hellaswag-tasks', { type: 'string', describe: 'with --hellaswag-file: tasks (default 400)' })
    .option('winogrande-tasks', { type: 'string', describe: 'with --winogrande-file: tasks (default all)' })
    .option('multiple-choice-tasks', { type: 'string', describe: 'with --multiple-choice-file: tasks (default all)' })
    .option('report', { type: 'string', describe: 'write report.html (with KLD against k̄ and its Pareto front), results.json/csv and the plots into this folder' })
    .example('$0 sweep -m model.gguf -f text.txt -o sweep.jsonl --experts 1 2 3 4 --expert-scale none seed-uniform uniform --kld', '12 points (11 evaluated: uniform at the trained count is the default), resumable')
    .option('strategy', { type: 'string', default: 'grid', describe: 'grid: every point on every chunk; halving: successive halving, dropping points significantly worse than the best on the chunks so far (docs/search.md)' })
    .option('initial-chunks', { type: 'string', describe: 'with --strategy halving: chunks of the first round (default: chunks / 64, at least 2)' })
    .option('alpha', { type: 'string', describe: 'with --strategy halving: chance of dropping the truly best point over the whole search (default 0.05)' })
    .example('$0 sweep -m model.gguf -f text.txt -o ser.jsonl --ser none 1,0.2 1,0.4 1,0.6 --kld', '-ser thresholds')
    .example('$0 sweep -m model.gguf -f text.txt -o h.jsonl --experts 1 2 3 4 --expert-scale none uniform --strategy halving', 'the best point for fewer tokens');

export const flagNames = { strategy: '--strategy', initialChunks: '--initial-chunks', alpha: '--alpha' };

/** A sweep's rows as a report (every point; ΔPPL against the default routing when the grid has it). */
export function sweepReportData(model: Model, r: SweepResult): ReportData {
  const info = model.info;
  const base = r.rows.find((x) => x.routing === 'default');
  const rows: ResultRow[] = r.rows.map((x) => ({
    model: basename(model.path),
    fileType: info.fileType,
    sizeBytes: info.sizeBytes,
    bitsPerWeight: info.bitsPerWeight,
    routing: x.routing,
    experts: x.experts.length ? Math.max(...info.moeLayers.map((l) => x.experts[l.layer]!)) : 0,
    scaleRule: typeof x.point.expertScale === 'string' && /^[a-z]/i.test(x.point.expertScale) ? x.point.expertScale : x.point.expertScale === undefined ? 'none' : 'custom',
    perplexity: x.perplexity,
    stderr: x.stderr,
    deltaPercent: base ? (100 * (x.perplexity - base.perplexity)) / base.perplexity : null,
    kldMean: x === base && x.kldMean !== null ? 0 : x.kldMean,
    sameTopPercent: x.sameTop === null ? null : x === base ? 100 : 100 * x.sameTop,
    tokensPerSecond: x.tokensPerSecond,
    threads: x.threads,
    expertsPerToken: typeof x.expertsPerToken === 'number' ? x.expertsPerToken : null,
  }));
  return {
    title: `moe-eval sweep: ${basename(model.path)}`,
    createdAt: new Date().toISOString(),
    settings: { model: model.path, results: r.out, points: r.rows.length, contextSize: r.rows[0]?.contextSize ?? 0, chunks: r.rows[0]?.chunks ?? 0 },
    fingerprints: r.rows[0] ? { text: r.rows[0].text } : {},
    rows,
  };
}

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const input = await textFromArgs(a);
  const routings = await routingGridFromArgs(a);
  const base = stringFlag(a, 'kl-divergence-base');
  if (base && a.kld) throw new TypeError('--kld and --kl-divergence-base both name a reference; give one');
  const kldTopK = intFlag(a, 'kld-top-k');
  if (kldTopK !== undefined && !a.kld) throw new TypeError('--kld-top-k sets the format of the base --kld writes beside --out; give --kld (a --kl-divergence-base file is read in its own format)');
  const given = (['hellaswag', 'winogrande', 'multiple-choice'] as const).filter((t) => a[`${t}-file`] !== undefined);
  if (given.length > 1) throw new TypeError(`--${given[0]}-file and --${given[1]}-file: give one task file`);
  for (const t of ['hellaswag', 'winogrande', 'multiple-choice']) if (a[`${t}-tasks`] !== undefined && a[`${t}-file`] === undefined) throw new TypeError(`--${t}-tasks needs --${t}-file`);
  const task = given[0];
  const nTasks = task ? intFlag(a, `${task}-tasks`) : undefined;
  const strategy = sweepStrategy(stringFlag(a, 'strategy'));
  const halving = strategy === 'halving';
  if (!halving) for (const f of ['initial-chunks', 'alpha']) if (a[f] !== undefined) throw new TypeError(`--${f} needs --strategy halving`);
  if (halving && task) throw new TypeError(`--${task}-file needs --strategy grid: halving drops points before they are evaluated in full`);
  const initialChunks = intFlag(a, 'initial-chunks');
  const alpha = numberFlag(a, 'alpha');
  const accuracy = task ? { task, file: stringFlag(a, `${task}-file`)!, ...(nTasks === undefined ? {} : { tasks: nTasks }) } : undefined;
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('sweep', !a.json);
  try {
    bar.points(0, routings.length);
    const r = await sweep(model, {
      ...input,
      ...contextFromArgs(a),
      routings,
      out: stringFlag(a, 'out')!,
      ...(base ? { reference: base } : a.kld ? { reference: 'default', ...(kldTopK === undefined ? {} : { kldTopK }) } : {}),
      ...(accuracy ? { accuracy } : {}),
      ...(strategy === 'grid' ? {} : { strategy, ...(initialChunks === undefined ? {} : { initialChunks }), ...(alpha === undefined ? {} : { alpha }) }),
      signal,
      onProgress: (p) => {
        bar.points(Math.max(0, p.point - 1), p.points, p.round ? `round ${p.round}/${p.rounds}, chunks ${p.fromChunk}–${p.toChunk}: ${p.routing}` : p.routing);
        bar.chunks(p.chunksDone, p.chunksTotal);
      },
      ...(halving ? {} : { onPoint: (row, done, total) => bar.points(done, total, `${row.routing}: PPL ${formatPerplexity(row.perplexity)}`) }),
    });
    bar.stop();
    for (const d of r.duplicates) notice(`a point is the same routing as ${d.sameAs}; evaluated once`);
    const reportDir = stringFlag(a, 'report');
    const written = reportDir ? await writeReport(resolve(reportDir), sweepReportData(model, r)) : undefined;
    if (a.json) {
      printJson(written ? { ...r, report: written } : r);
      return;
    }
    const withKld = r.rows.some((x) => x.kldMean !== null);
    const withAcc = r.rows.some((x) => x.accuracy);
    const threads = [...new Set(r.rows.map((x) => x.threads))].join(',');
    process.stdout.write(
      table(
        ['routing', ...(halving ? ['chunks', 'search'] : []), 'k̄', 'PPL', '±', ...(withKld ? ['mean KLD', 'same top'] : []), ...(withAcc ? [`${task} accuracy`, 'right→wrong', 'wrong→right'] : []), `tokens/s (-t ${threads})`],
        r.rows.map((x) => [
          x.routing,
          ...(halving ? [x.chunks, x.best ? 'best' : x.dropped ? `dropped: t ${x.dropped.t.toFixed(2)} > ${x.dropped.critical.toFixed(2)} vs ${x.dropped.against}` : 'survived'] : []),
          typeof x.expertsPerToken === 'number' ? x.expertsPerToken.toFixed(3) : '-',
          formatPerplexity(x.perplexity),
          formatStderr(x.stderr),
          ...(withKld ? [formatKld(x.kldMean), formatPercent(x.sameTop === null ? null : 100 * x.sameTop)] : []),
          ...(withAcc ? (x.accuracy ? [formatPercent(x.accuracy.accuracy), x.accuracy.rightToWrong, x.accuracy.wrongToRight] : ['-', '-', '-']) : []),
          formatTokensPerSecond(x.tokensPerSecond),
        ]),
      ) + '\n',
    );
    if (r.halving) {
      const h = r.halving;
      process.stdout.write(
        `halving on mean ${h.metric === 'kld' ? 'KLD' : 'NLL'} per chunk (paired t-test, alpha ${h.alpha}): ${h.rounds.length} rounds, ${h.initialChunks} to ${h.rounds[h.rounds.length - 1]!.chunks} of ${h.totalChunks} chunks; best ${h.best}\n` +
          `tokens decoded: ${r.tokensEvaluated}, the full grid ${h.tokensFullGrid} (${(h.tokensFullGrid / r.tokensEvaluated).toFixed(2)}× fewer)\n`,
      );
    }
    process.stdout.write(`${r.evaluated} evaluated, ${r.resumed} already in ${r.out}${written ? `\nreport: ${written.html}` : ''}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}
