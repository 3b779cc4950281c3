/** moe-eval bench: prompt-processing and generation speed per routing, as llama-bench measures and prints it, with KLD beside it. */
import type { Argv } from 'yargs';

import { BENCH_FORMATS, type BenchFormat, benchPrinter } from '../../bench-output.js';
import { type BenchTest, bench } from '../../bench.js';
import { cacheTypeFlag, contextFlags, flagName, flashAttentionFlag, intFlag, kldTopKFlag, modelFlags, routingFlags, stringFlag } from '../flags.js';
import { loadModelFromArgs } from '../load.js';
import { progress } from '../progress.js';
import { routingGridFromArgs } from '../routing-args.js';

export const command = 'bench';
export const describe = "prompt processing (pp) and generation (tg) tokens/s per routing, llama-bench's method and output, with KLD beside speed";
export const builder = (y: Argv) =>
  kldTopKFlag(routingFlags(contextFlags(modelFlags(y))))
    .option('n-prompt', { alias: 'p', type: 'string', describe: 'prompt lengths of the pp tests, comma-separated (default 512; 0: none)' })
    .option('n-gen', { alias: 'n', type: 'string', describe: 'generated tokens of the tg tests, comma-separated (default 128; 0: none)' })
    .option('n-gen-prompt', { alias: 'pg', type: 'string', array: true, describe: 'pp,tg: a test of a prompt then generation (repeatable)' })
    .option('n-depth', { alias: 'd', type: 'string', describe: 'tokens already in the KV cache, comma-separated (default 0)' })
    .option('repetitions', { alias: 'r', type: 'string', describe: 'repetitions of each test (default 5)' })
    .option('output', { alias: 'o', type: 'string', default: 'md', choices: [...BENCH_FORMATS], describe: "output format, llama-bench's: md, csv, json, jsonl, sql" })
    .option('warmup', { type: 'boolean', default: true, describe: 'a warm-up run before each test (--no-warmup: none, as llama-bench)' })
    .option('kld', { type: 'string', describe: 'also the mean KLD and same top of each routing against the default on this text file (-c and --chunks size it)' })
    .option('chunks', { type: 'string', describe: 'with --kld: evaluate at most this many chunks' })
    .example('$0 bench -m model.gguf -p 512 -n 128 --experts 8 6 4 --kld wiki.test.raw', 'speed and quality of three expert counts, one row each')
    .example('$0 bench -m model.gguf --ser none 1,0.3 1,0.5 -o sql | sqlite3 llama-bench.sqlite', "rows llama.cpp's compare-llama-bench.py reads");

function list(a: Record<string, unknown>, key: string, fallback: number[]): number[] {
  const v = stringFlag(a, key);
  if (v === undefined) return fallback;
  return v.split(',').map((x) => {
    const t = x.trim();
    if (!/^\d+$/.test(t)) throw new TypeError(`Expected comma-separated integers for ${flagName(key)} but received ${JSON.stringify(v)}`);
    return Number(t);
  });
}

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const prompts = list(a, 'n-prompt', [512]);
  const gens = list(a, 'n-gen', [128]);
  const depths = list(a, 'n-depth', [0]);
  const pairs = ((a['n-gen-prompt'] as string[] | undefined) ?? []).map((v) => {
    const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v);
    if (!m) throw new TypeError(`Expected pp,tg (e.g. 512,128) for -pg (--n-gen-prompt) but received ${JSON.stringify(v)}`);
    return { nPrompt: Number(m[1]), nGen: Number(m[2]) };
  });
  const tests: BenchTest[] = [];
  for (const nDepth of depths) {
    for (const p of prompts) if (p > 0) tests.push({ nPrompt: p, nGen: 0, nDepth });
    for (const n of gens) if (n > 0) tests.push({ nPrompt: 0, nGen: n, nDepth });
    for (const pg of pairs) tests.push({ ...pg, nDepth });
  }
  if (tests.length === 0) throw new TypeError('No test to run: give -p, -n or -pg values above 0');
  const kldFile = stringFlag(a, 'kld');
  const c = intFlag(a, 'ctx-size');
  const chunks = intFlag(a, 'chunks');
  if (a['kld-top-k'] !== undefined) {
    throw new TypeError("--kld-top-k sets the format of a KL-divergence base file; bench --kld compares with the default routing in memory and writes none (perplexity, sweep and compare write bases)");
  }
  if (!kldFile && (c !== undefined || chunks !== undefined)) throw new TypeError(`${c !== undefined ? flagName('ctx-size') : '--chunks'} sizes the --kld evaluation; give --kld FILE too`);
  const routings = await routingGridFromArgs(a);
  const repetitions = intFlag(a, 'repetitions');
  const threads = intFlag(a, 'threads');
  const batchSize = intFlag(a, 'batch-size');
  const ubatchSize = intFlag(a, 'ubatch-size');
  const flashAttention = flashAttentionFlag(a);
  const cacheTypeK = cacheTypeFlag(a, 'cache-type-k');
  const cacheTypeV = cacheTypeFlag(a, 'cache-type-v');
  const format = String(a.output) as BenchFormat;
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('bench', true, 'repetitions');
  try {
    const r = await bench(model, {
      routings,
      tests,
      ...(repetitions === undefined ? {} : { repetitions }),
      ...(threads === undefined ? {} : { threads }),
      ...(batchSize === undefined ? {} : { batchSize }),
      ...(ubatchSize === undefined ? {} : { ubatchSize }),
      ...(flashAttention === undefined ? {} : { flashAttention }),
      ...(cacheTypeK === undefined ? {} : { cacheTypeK }),
      ...(cacheTypeV === undefined ? {} : { cacheTypeV }),
      warmup: Boolean(a.warmup),
      ...(kldFile ? { kld: { file: kldFile, ...(c === undefined ? {} : { contextSize: c }), ...(chunks === undefined ? {} : { chunks }) } } : {}),
      signal,
      onProgress: (p) => {
        bar.points(p.routing - 1, p.routings, `${p.label}${p.test ? ` ${p.test}` : ''}${p.phase === 'kld' ? ' KLD' : ''}`);
        if (p.repetitions) bar.chunks(p.repetitionsDone ?? 0, p.repetitions);
      },
    });
    bar.stop();
    const printer = benchPrinter(format, r.settings);
    process.stdout.write(printer.header() + r.rows.map((row, i) => printer.row(row, i)).join('') + printer.footer(r.rows));
  } finally {
    bar.stop();
    await model.dispose();
  }
}
