/**
 * moe-eval demo (npm start): the main job on the bundled demo model, offline — a sweep of experts per
 * token × expert-output scale rule on the held-out text, printed as a table and written as JSON and CSV.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Argv } from 'yargs';

import { evaluate } from '../../evaluate.js';
import { loadModel } from '../../model.js';
import { packageRoot } from '../../native.js';
import type { Routing } from '../../routing.js';
import { fmt, printJson, table } from '../output.js';
import { progressBar } from '../progress.js';

export const DEMO_MODEL = join(packageRoot, 'models', 'demo', 'moe-demo.gguf');
export const DEMO_TEXT = join(packageRoot, 'models', 'demo', 'heldout.txt');

export const command = 'demo';
export const describe = 'sweep experts × scale rules on the bundled demo MoE (what `npm start` runs)';
export const builder = (y: Argv) =>
  y
    .option('out', { type: 'string', default: 'reports/demo', describe: 'folder for results.json and results.csv' })
    .option('ctx-size', { alias: 'c', type: 'number', default: 256 })
    .option('chunks', { type: 'number', default: 16 })
    .option('threads', { alias: 't', type: 'number' })
    .option('json', { type: 'boolean', default: false })
    .example('$0 demo --chunks 8', 'a quicker run');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  if (!existsSync(DEMO_MODEL)) throw new TypeError(`The demo model is missing (${DEMO_MODEL}); reinstall the package`);
  const model = await loadModel(DEMO_MODEL, { signal });
  const started = Date.now();
  try {
    const info = model.info;
    const ctx = await model.createContext({ contextSize: a['ctx-size'], batchSize: 4 * a['ctx-size'], ...(a.threads ? { threads: a.threads } : {}) });
    const experts = [1, 2, 3, 4].filter((m) => m <= info.experts);
    const rules = ['none', 'seed-uniform', 'uniform'];
    const points: Routing[] = [];
    for (const m of experts) for (const rule of rules) if (!(m === info.expertsUsed && rule !== 'none')) points.push({ experts: m, expertScale: rule });
    const bar = a.json ? progressBar('') : progressBar('sweep');
    const results = [];
    let base: number | undefined;
    for (const [i, routing] of points.entries()) {
      const r = await evaluate(ctx, { file: DEMO_TEXT, chunks: a.chunks, routing, signal });
      if (routing.experts === info.expertsUsed) base = r.perplexity;
      results.push({ experts: routing.experts as number, rule: routing.expertScale as string, scale: r.routing.expertScale[0]!, perplexity: r.perplexity, stderr: r.stderr, tokensPerSecond: r.tokensPerSecond });
      bar.update(i + 1, points.length, `${r.routing.label}: PPL ${fmt(r.perplexity)}`);
    }
    bar.stop();
    await ctx.dispose();
    const rows = results.map((r) => ({ ...r, deltaPercent: base ? (100 * (r.perplexity - base)) / base : null }));
    const out = resolve(a.out);
    mkdirSync(out, { recursive: true });
    const summary = { model: DEMO_MODEL, text: DEMO_TEXT, contextSize: a['ctx-size'], chunks: a.chunks, renormalized: info.renormalized, seconds: (Date.now() - started) / 1000, rows };
    writeFileSync(join(out, 'results.json'), JSON.stringify(summary, null, 2) + '\n');
    writeFileSync(
      join(out, 'results.csv'),
      ['experts,rule,scale,perplexity,stderr,delta_percent,tokens_per_second', ...rows.map((r) => [r.experts, r.rule, r.scale, r.perplexity, r.stderr, r.deltaPercent ?? '', r.tokensPerSecond].join(','))].join('\n') + '\n',
    );
    if (a.json) {
      printJson(summary);
      return;
    }
    process.stdout.write(`demo model: ${info.architecture}, ${info.experts} experts, top-${info.expertsUsed}, ${info.renormalized ? 'renormalized' : 'un-normalized'} router weights; held-out text, ${a.chunks} chunks of ${a['ctx-size']} tokens\n`);
    process.stdout.write(
      table(['experts', 'scale rule', 'factor', 'PPL', '±', 'Δ vs default', 'tokens/s'], rows.map((r) => [r.experts, r.rule, fmt(r.scale), fmt(r.perplexity), fmt(r.stderr, 4), r.deltaPercent === null ? '' : `${r.deltaPercent >= 0 ? '+' : ''}${r.deltaPercent.toFixed(2)}%`, fmt(r.tokensPerSecond, 0)])) + '\n',
    );
    process.stdout.write(`results: ${join(out, 'results.json')}, ${join(out, 'results.csv')} (${summary.seconds.toFixed(1)} s)\n`);
  } finally {
    await model.dispose();
  }
}
