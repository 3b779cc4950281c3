/** moe-eval perplexity: llama-perplexity's numbers, under any routing. */
import { basename } from 'node:path';
import type { Argv } from 'yargs';

import { evaluate } from '../../evaluate.js';
import { multipleChoice } from '../../multiple-choice.js';
import type { TaskKind } from '../../multiple-choice/common.js';
import { resolveRouting } from '../../routing.js';
import { formatKld, formatPerplexity, formatStderr, formatTokensPerSecond } from '../../format.js';
import { contextFlags, intFlag, jsonFlag, kldTopKFlag, modelFlags, routingFlags, stringFlag, textFlags } from '../flags.js';
import { contextFromArgs, loadModelFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { progress } from '../progress.js';
import { routingFromArgs } from '../routing-args.js';

export const command = 'perplexity';
export const describe = 'perplexity of a text under a routing (llama-perplexity compatible), optionally KL-divergence against a base';

export const builder = (y: Argv) =>
  kldTopKFlag(jsonFlag(routingFlags(textFlags(contextFlags(modelFlags(y))))))
    .option('kl-divergence-base', { type: 'string', describe: 'without --kl-divergence: write this base file; with it: compare against it' })
    .option('kl-divergence', { type: 'boolean', default: false, describe: 'KL-divergence against --kl-divergence-base (llama-perplexity semantics)' })
    .option('hellaswag', { type: 'boolean', default: false, describe: 'HellaSwag accuracy on -f (llama-perplexity --hellaswag; its 6-line format)' })
    .option('hellaswag-tasks', { type: 'string', describe: 'HellaSwag tasks, drawn at random as llama-perplexity draws them (default 400)' })
    .option('winogrande', { type: 'boolean', default: false, describe: 'Winogrande accuracy on -f (llama-perplexity --winogrande; its CSV)' })
    .option('winogrande-tasks', { type: 'string', describe: 'Winogrande tasks (default all; fewer are drawn at random)' })
    .option('multiple-choice', { type: 'boolean', default: false, describe: "multiple-choice accuracy on -f (llama-perplexity --multiple-choice; its binary format)" })
    .option('multiple-choice-tasks', { type: 'string', describe: 'multiple-choice tasks (default all; fewer are drawn at random)' })
    .option('parallel', { alias: 'np', type: 'string', describe: 'with a task flag: sequences per decode, at least 4 (llama-perplexity -np)' })
    .example('$0 perplexity -m model.gguf -f wiki.test.raw -c 512 --experts 3 --expert-scale uniform', 'three experts per token, output scaled by the normalization-aware factor')
    .example('$0 perplexity -m q4.gguf --kl-divergence-base base.kld --kl-divergence --experts 3', 'KL-divergence against a base written by llama-perplexity or moe-eval')
    .example('$0 perplexity -m model.gguf --hellaswag -f hellaswag_val_full.txt --experts 3', "HellaSwag accuracy at 3 experts, with the answers that flipped against the model's own routing");

const TASKS = [
  ['hellaswag', 'hellaswag'],
  ['winogrande', 'winogrande'],
  ['multiple-choice', 'multiple-choice'],
] as const;

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const tasks = TASKS.filter(([flag]) => a[flag]);
  if (tasks.length > 1) throw new TypeError(`--${tasks[0]![0]} and --${tasks[1]![0]} each score a task file; give one`);
  if (tasks.length === 1) return multipleChoiceHandler(a, tasks[0]![1], signal);
  for (const [flag] of TASKS) if (a[`${flag}-tasks`] !== undefined) throw new TypeError(`--${flag}-tasks needs --${flag}`);
  if (a.parallel !== undefined) throw new TypeError('-np (--parallel) applies to --hellaswag, --winogrande and --multiple-choice');
  const base = stringFlag(a, 'kl-divergence-base');
  if (a['kl-divergence'] && !base) throw new TypeError('--kl-divergence needs --kl-divergence-base FILE');
  const kldTopK = intFlag(a, 'kld-top-k');
  if (kldTopK !== undefined && (!base || a['kl-divergence'])) {
    throw new TypeError('--kld-top-k sets the format of the base --kl-divergence-base writes (without --kl-divergence); a base being read is recognized by its header');
  }
  const input = await textFromArgs(a, !a['kl-divergence']);
  const routing = await routingFromArgs(a, 'perplexity');
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('perplexity', !a.json);
  try {
    const r = await evaluate(model, {
      ...input,
      ...contextFromArgs(a),
      routing,
      ...(base ? (a['kl-divergence'] ? { reference: base } : { saveReference: base, ...(kldTopK === undefined ? {} : { kldTopK }) }) : {}),
      signal,
      onProgress: (p) => bar.chunks(p.chunksDone, p.chunksTotal, `PPL ${formatPerplexity(p.perplexity)}`),
    });
    bar.stop();
    if (a.json) {
      printJson(r);
      return;
    }
    process.stdout.write(
      table(
        ['model', 'routing', 'k̄', 'chunks', 'PPL', '±', `tokens/s (-t ${r.threads})`],
        [[basename(r.model.path), r.routing.label, r.expertsPerToken.mean.toFixed(3), r.chunks.length, formatPerplexity(r.perplexity), formatStderr(r.stderr), formatTokensPerSecond(r.tokensPerSecond)]],
      ) + '\n',
    );
    process.stdout.write(`Final estimate: PPL = ${formatPerplexity(r.perplexity)} +/- ${formatStderr(r.stderr)}\n`);
    if (r.kld) {
      const k = r.kld;
      const pm = (x: number, u: number) => `${x.toFixed(6)} ± ${u.toFixed(6)}`;
      const pct = (x: number, u: number) => `${(100 * x).toFixed(3)} ± ${(100 * u).toFixed(3)} %`;
      process.stdout.write(
        table(['KL-divergence statistic', 'value'], [
          ['Mean PPL(Q)', pm(k.perplexity, k.perplexityUnc)],
          ['Mean PPL(base)', pm(k.basePerplexity, k.basePerplexityUnc)],
          ['Cor(ln PPL(Q), ln PPL(base))', `${(100 * k.correlation).toFixed(2)} %`],
          ['Mean ln(PPL(Q)/PPL(base))', pm(k.logRatio, k.logRatioUnc)],
          ['Mean PPL(Q)/PPL(base)', pm(k.ratio, k.ratioUnc)],
          ['Mean PPL(Q)-PPL(base)', pm(k.difference, k.differenceUnc)],
          ['Mean KLD', pm(k.kldMean, k.kldUnc)],
          ...(k.kldLowerBound === undefined ? [] : [['Mean KLD lower bound (compact base)', formatKld(k.kldLowerBound)]]),
          ['Maximum / 99.9% / 99% / 95% / 90% KLD', [k.kldMax, k.kld999, k.kld99, k.kld95, k.kld90].map(formatKld).join(' / ')],
          ['Median KLD', formatKld(k.kldMedian)],
          ['10% / 5% / 1% / 0.1% / minimum KLD', [k.kld10, k.kld5, k.kld1, k.kld01, k.kldMin].map(formatKld).join(' / ')],
          ['Mean Δp', pct(k.dpMean, k.dpUnc)],
          ['RMS Δp', pct(k.dpRms, k.dpRmsUnc)],
          ['Same top p', pct(k.sameTop, k.sameTopUnc)],
        ]) + '\n',
      );
    }
    if (r.savedReference) process.stdout.write(`KL-divergence base written to ${r.savedReference}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}

/** --hellaswag / --winogrande / --multiple-choice: llama-perplexity's accuracies, with flips against the model's own routing. */
async function multipleChoiceHandler(a: Record<string, unknown>, task: TaskKind, signal: AbortSignal): Promise<void> {
  if (a['kl-divergence'] || a['kl-divergence-base']) throw new TypeError(`--${task} scores a task file; it does not take --kl-divergence`);
  const file = stringFlag(a, 'file');
  if (file === undefined) throw new TypeError(`--${task} needs the task file: -f FILE`);
  if (a.chunks !== undefined) throw new TypeError(`--chunks applies to perplexity; --${task} takes --${task}-tasks`);
  const n = intFlag(a, `${task}-tasks`);
  const parallel = intFlag(a, 'parallel');
  const routing = await routingFromArgs(a, 'perplexity');
  const model = await loadModelFromArgs(a, signal);
  const bar = progress(task, !a.json, 'tasks');
  try {
    const resolved = resolveRouting(routing, model.info);
    const r = await multipleChoice(model, {
      task,
      ...(file === '-' ? { data: await readStdin() } : { file }),
      ...(n === undefined ? {} : { tasks: n }),
      ...(parallel === undefined ? {} : { parallel }),
      ...contextFromArgs(a),
      routing,
      // under another routing, the answers that changed against the model's own routing
      ...(resolved.isDefault ? {} : { reference: {} }),
      signal,
      onProgress: (p) => bar.chunks(p.tasksDone, p.tasksTotal, p.run === 'reference' ? "the model's own routing" : ''),
    });
    bar.stop();
    if (a.json) {
      printJson(r);
      return;
    }
    const score = task === 'hellaswag' ? `${r.accuracy.toFixed(4)} % [${r.interval[0].toFixed(4)}, ${r.interval[1].toFixed(4)}]` : `${r.accuracy.toFixed(4)} ± ${r.uncertainty.toFixed(4)} %`;
    const rows: (string | number)[][] = [[r.routing.label, r.tasks, score, '', '', '']];
    if (r.reference) {
      const f = r.reference;
      rows.unshift([f.routing.label, f.tasks, `${f.accuracy.toFixed(4)} %`, '', '', '']);
      rows[1]!.splice(3, 3, f.flips.rightToWrong, f.flips.wrongToRight, `${f.difference >= 0 ? '+' : ''}${f.difference.toFixed(2)} (p = ${f.pValue.toPrecision(3)})`);
    }
    process.stdout.write(table(['routing', 'tasks', 'accuracy', 'right→wrong', 'wrong→right', 'Δ points (McNemar)'], rows) + '\n');
    process.stdout.write(`Final ${task} score: ${score}${task === 'multiple-choice' ? ` (random chance ${r.chance.toFixed(4)} %)` : ''}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}

async function readStdin(): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
