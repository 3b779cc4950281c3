// Pruning, measured in one run:
//  1. a sweep of N pruning ratios as runtime masks on one loaded model (pruneSweep) against the old way:
//     per ratio, slice a GGUF with those experts removed (exportModel), load it, evaluate it. Both from
//     the same routing profile, on the same text; alternating rounds, the median of the per-round ratios
//     old / new. The perplexities of both ways are printed side by side (they must agree);
//  2. the exported pruned file's speed against the original's: llama.cpp's own llama-bench (built from
//     the same vendor tree) on both files and on a byte-identical copy of the original written by the
//     same exporter (the noise floor: any ratio of the copy away from 1 is the machine, not the file),
//     rotating the order every round; pp and tg tokens/s (the best repetition of each run) and the median
//     of the per-round ratios;
//  3. (--large) where the runtime mask and the sliced file differ in floating point, and why: per number
//     of experts left, the PPL of both at llama-perplexity's default ubatch, at one token per ubatch and
//     with every expert left used, and llama-perplexity's own PPL of one sliced file at -ub 128 and -ub 1
//     (see docs/pruning.md).
// Hold the CPU lock while this runs. --large takes over 10 minutes on 2 cores: the functions can be run one
// at a time (benchPrunedSpeed, benchMaskVsFile with largeModel(type)).
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { calibrate, evaluate, exportModel, loadModel, pruneExperts, pruneSweep } from '../dist/index.js';
import { runLlamaBench } from './llama-bench.mjs';
import { alternate, demoModel, demoText, largeModel, line, median, runLlamaPerplexity, spread, work } from './lib.mjs';

export async function benchPruneSweep({ model: path = demoModel, label = 'demo model', ratios = [0.125, 0.25, 0.375, 0.5], by = 'reap', contextSize = 256, chunks = 8, threads = 2, rounds = 3 } = {}) {
  const m = await loadModel(path);
  const all = await m.tokenize(readFileSync(demoText, 'utf8'));
  const N = m.info.expertCount;
  const tokens = all.subarray(0, contextSize * chunks);
  const profile = await calibrate(m, { tokens: all.subarray(contextSize * chunks, contextSize * (chunks + 16)), contextSize, threads, experts: m.info.expertsUsed });
  await m.dispose();
  const out = join(work, 'prune-bench.jsonl');
  const sizes = { contextSize, batchSize: contextSize, threads, chunks };
  let fromSweep;
  const fromFiles = [];
  const runtime = async () => {
    rmSync(out, { force: true });
    const r = await pruneSweep(path, { tokens, profile, ratios, by: [by], out, ...sizes });
    fromSweep = r.rows.map((x) => x.perplexity);
  };
  const sliced = async () => {
    fromFiles.length = 0;
    const src = await loadModel(path);
    try {
      for (const ratio of ratios) {
        const file = join(work, `pruned-${ratio}.gguf`);
        await exportModel(src, file, { routing: pruneExperts(profile, { ratio, by, model: src }) });
        const cut = await loadModel(file);
        try {
          fromFiles.push((await evaluate(cut, { tokens, ...sizes })).perplexity);
        } finally {
          await cut.dispose();
        }
        rmSync(file, { force: true });
      }
    } finally {
      await src.dispose();
    }
  };
  const t = await alternate(rounds, runtime, sliced);
  line(`prune sweep of ${ratios.length} ratios, one load vs slice+load+evaluate each (${label})`, `× ${t.ratio.toFixed(2)} faster (${(t.a / 1000).toFixed(1)} s vs ${(t.b / 1000).toFixed(1)} s, median of ${rounds} pairs; spreads ${spread(t.ta).toFixed(0)} % / ${spread(t.tb).toFixed(0)} %)`);
  const worst = Math.max(...fromSweep.map((p, i) => Math.abs(p / fromFiles[i] - 1)));
  // equal in exact arithmetic; in floating point only bit for bit where N and the experts left are both multiples of 4 (benchMaskVsFile)
  line('  PPL runtime mask vs sliced file, per ratio', `${fromSweep.map((p, i) => `${p.toFixed(4)}/${fromFiles[i].toFixed(4)} (${N - Math.floor(ratios[i] * N)} left)`).join(', ')} (max rel. diff ${worst.toExponential(1)})`);
  return { ratio: t.ratio, runtimeMs: t.a, slicedMs: t.b, fromSweep, fromFiles };
}

export async function benchPrunedSpeed({ model: path = demoModel, label = 'demo model', ratio = 0.5, nPrompt = 256, nGen = 64, repetitions = 5, threads = 2, rounds = 6 } = {}) {
  const m = await loadModel(path);
  const all = await m.tokenize(readFileSync(demoText, 'utf8'));
  const profile = await calibrate(m, { tokens: all.subarray(0, 256 * 16), contextSize: 256, threads, experts: m.info.expertsUsed });
  const file = join(work, `pruned-speed-${ratio}.gguf`);
  const copy = join(work, 'pruned-speed-copy.gguf');
  await exportModel(m, file, { routing: pruneExperts(profile, { ratio, by: 'reap', model: m }) });
  await exportModel(m, copy, { routing: {} }); // nothing to change: the exporter writes the same bytes
  await m.dispose();
  execFileSync('sync', [file, copy]); // no write-back of the new files while they are timed
  const size = (f) => statSync(f).size;
  line(`pruned file (${label}, ${100 * ratio} % of experts removed)`, `${(size(file) / 2 ** 20).toFixed(1)} MiB vs ${(size(path) / 2 ** 20).toFixed(1)} MiB (× ${(size(file) / size(path)).toFixed(3)})`);
  const files = { original: path, copy, pruned: file };
  const names = Object.keys(files);
  const ts = {};
  for (let i = 0; i < rounds; i++) {
    for (const n of names.map((_, j) => names[(i + j) % names.length])) {
      // one llama-bench run per file and round: its pp and tg rows
      const rows = await runLlamaBench(['-m', files[n], '-p', String(nPrompt), '-n', String(nGen), '-r', String(repetitions), '-t', String(threads), '-ngl', '0']);
      // the best of its repetitions: other work on a shared machine only ever slows a repetition down
      for (const row of rows) ((ts[row.n_prompt ? `pp${nPrompt}` : `tg${nGen}`] ??= {})[n] ??= []).push(Math.max(...row.samples_ts));
    }
  }
  const results = {};
  for (const [name, by] of Object.entries(ts)) {
    const per = (n) => by[n].map((x, i) => x / by.original[i]);
    line(`  llama-bench ${name}: pruned / original`, `× ${median(per('pruned')).toFixed(3)} (${median(by.pruned).toFixed(1)} vs ${median(by.original).toFixed(1)} t/s best of ${repetitions}, median of ${rounds} rounds; per round ${per('pruned').map((x) => x.toFixed(2)).join(' ')})`);
    line(`  llama-bench ${name}: byte-identical copy / original`, `× ${median(per('copy')).toFixed(3)} (the noise floor; per round ${per('copy').map((x) => x.toFixed(2)).join(' ')})`);
    results[name] = { ratio: median(per('pruned')), copyRatio: median(per('copy')), ...by };
  }
  rmSync(file, { force: true });
  rmSync(copy, { force: true });
  return results;
}

/**
 * The runtime mask against the sliced file, per number of experts left (of 8), at llama-perplexity's
 * default ubatch (the whole chunk), at one token per ubatch, and with every expert left used (nothing for
 * top-k to choose); then llama-perplexity's own PPL of one
 * sliced file at both ubatch sizes. In exact arithmetic all of them are equal. On the CPU, llama.cpp
 * computes the router's logits (an f32 [d, N] × [d, T] product) with llamafile's tinyBLAS when the
 * rows (experts) are a multiple of 4 and T ≥ 2, else with ggml's dot product, which sums in another
 * order: the mask (N = 8 rows) and a file with 5, 6 or 7 experts get router logits a few ulp apart.
 */
export async function benchMaskVsFile({ model: path, label, lefts = [7, 6, 5, 4], contextSize = 128, chunks = 4, threads = 2 } = {}) {
  const m = await loadModel(path);
  const N = m.info.expertCount;
  const tokens = (await m.tokenize(readFileSync(demoText, 'utf8'))).subarray(0, contextSize * chunks);
  const ppl = async (model, routing, ubatchSize) => (await evaluate(model, { tokens, contextSize, batchSize: contextSize, ubatchSize, threads, routing })).perplexity;
  const rel = (a, b) => (a === b ? '0 (same bits)' : Math.abs(a / b - 1).toExponential(1));
  const cells = [];
  let sliced;
  for (const left of lefts) {
    const maskExperts = Array.from({ length: N - left }, (_, j) => N - 1 - 2 * j).sort((a, b) => a - b);
    const file = join(work, `mask-vs-file-${left}.gguf`);
    await exportModel(m, file, { routing: { maskExperts } });
    const cut = await loadModel(file);
    try {
      const whole = [await ppl(m, { maskExperts }, contextSize), await ppl(cut, undefined, contextSize)];
      const one = [await ppl(m, { maskExperts }, 1), await ppl(cut, undefined, 1)];
      // every expert left used: no top-k choice that a near-tie could flip
      const all = [await ppl(m, { maskExperts, experts: left }, contextSize), await ppl(cut, { experts: left }, contextSize)];
      cells.push(`${left} left: ${rel(...whole)} / ${rel(...one)} / ${rel(...all)}`);
    } finally {
      await cut.dispose();
    }
    if (left % 4 !== 0 && !sliced) sliced = file;
    else rmSync(file, { force: true });
  }
  line(`PPL mask vs sliced file, ubatch ${contextSize} / 1 / ${contextSize} with every expert left used (${label})`, cells.join(', '));
  if (sliced) {
    const args = (ub) => ['-m', sliced, '-f', demoText, '-c', String(contextSize), '-b', String(contextSize), '-ub', String(ub), '--chunks', String(chunks), '-t', String(threads)];
    const [a, b] = [(await runLlamaPerplexity(args(contextSize))).perplexity, (await runLlamaPerplexity(args(1))).perplexity];
    line(`  llama-perplexity on one sliced file, -ub ${contextSize} vs -ub 1`, `${a.toFixed(4)} vs ${b.toFixed(4)} (${rel(a, b)} relative: llama.cpp's own spread)`);
    rmSync(sliced, { force: true });
  }
  await m.dispose();
}

// node bench/prune.mjs [--large]: the demo model; --large adds the generated 175 M-parameter MoE (q8_0 and F16 speed;
// f32, F16 and q8_0 runtime mask vs sliced file)
if (import.meta.url === `file://${process.argv[1]}`) {
  await benchPruneSweep();
  await benchPrunedSpeed();
  if (process.argv.includes('--large')) {
    const model = await largeModel('q8_0');
    await benchPruneSweep({ model, label: 'generated 175 M MoE, q8_0', contextSize: 128, chunks: 4, rounds: 2 });
    await benchPrunedSpeed({ model, label: 'generated 175 M MoE, q8_0', nPrompt: 128, nGen: 32 });
    await benchPrunedSpeed({ model: await largeModel('f16'), label: 'generated 175 M MoE, F16', nPrompt: 128, nGen: 32 });
    for (const type of ['f32', 'f16', 'q8_0']) await benchMaskVsFile({ model: await largeModel(type), label: `generated 175 M MoE, ${type}` });
  }
}
