// Pruning, measured in one run:
//  1. a sweep of N pruning ratios as runtime masks on one loaded model (pruneSweep) against the old way:
//     per ratio, slice a GGUF with those experts removed (exportModel), load it, evaluate it. Both from
//     the same routing profile, on the same text; alternating rounds, the median of the per-round ratios
//     old / new. The perplexities of both ways are printed side by side (they must agree);
//  2. the exported pruned file's speed against the original's: llama.cpp's own llama-bench (built from
//     the same vendor tree) on both files, alternating; pp and tg tokens/s and their ratio.
// Hold the CPU lock while this runs.
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { calibrate, evaluate, exportModel, loadModel, pruneExperts, pruneSweep } from '../dist/index.js';
import { runLlamaBench } from './llama-bench.mjs';
import { alternate, demoModel, demoText, largeModel, line, median, spread, work } from './lib.mjs';

export async function benchPruneSweep({ model: path = demoModel, label = 'demo model', ratios = [0.125, 0.25, 0.375, 0.5], by = 'reap', contextSize = 256, chunks = 8, threads = 2, rounds = 3 } = {}) {
  const m = await loadModel(path);
  const all = await m.tokenize((await import('node:fs')).readFileSync(demoText, 'utf8'));
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
  line('  PPL runtime mask vs sliced file, per ratio', `${fromSweep.map((p, i) => `${p.toFixed(4)}/${fromFiles[i].toFixed(4)}`).join(', ')} (max rel. diff ${worst.toExponential(1)})`);
  return { ratio: t.ratio, runtimeMs: t.a, slicedMs: t.b, fromSweep, fromFiles };
}

export async function benchPrunedSpeed({ model: path = demoModel, label = 'demo model', ratio = 0.5, nPrompt = 256, nGen = 64, repetitions = 3, threads = 2, rounds = 3 } = {}) {
  const m = await loadModel(path);
  const all = await m.tokenize((await import('node:fs')).readFileSync(demoText, 'utf8'));
  const profile = await calibrate(m, { tokens: all.subarray(0, 256 * 16), contextSize: 256, threads, experts: m.info.expertsUsed });
  const file = join(work, `pruned-speed-${ratio}.gguf`);
  await exportModel(m, file, { routing: pruneExperts(profile, { ratio, by: 'reap', model: m }) });
  await m.dispose();
  const size = (f) => statSync(f).size;
  line(`pruned file (${label}, ${100 * ratio} % of experts removed)`, `${(size(file) / 2 ** 20).toFixed(1)} MiB vs ${(size(path) / 2 ** 20).toFixed(1)} MiB (× ${(size(file) / size(path)).toFixed(3)})`);
  const results = {};
  for (const [name, p, n] of [[`pp${nPrompt}`, nPrompt, 0], [`tg${nGen}`, 0, nGen]]) {
    const orig = [];
    const pruned = [];
    const args = (f) => ['-m', f, '-p', String(p), '-n', String(n), '-r', String(repetitions), '-t', String(threads), '-ngl', '0'];
    for (let i = 0; i < rounds; i++) {
      const a = async () => orig.push((await runLlamaBench(args(path)))[0].avg_ts);
      const b = async () => pruned.push((await runLlamaBench(args(file)))[0].avg_ts);
      if (i % 2 === 0) { await a(); await b(); } else { await b(); await a(); }
    }
    const ratioTs = median(pruned.map((x, i) => x / orig[i]));
    line(`  llama-bench ${name}: pruned / original`, `× ${ratioTs.toFixed(3)} (${median(pruned).toFixed(1)} vs ${median(orig).toFixed(1)} t/s, median of ${rounds} pairs)`);
    results[name] = { ratio: ratioTs, pruned, orig };
  }
  rmSync(file, { force: true });
  return results;
}

// node bench/prune.mjs [--large]: the demo model; --large adds the generated 175 M-parameter MoE (q8_0)
if (import.meta.url === `file://${process.argv[1]}`) {
  await benchPruneSweep();
  await benchPrunedSpeed();
  if (process.argv.includes('--large')) {
    const model = await largeModel('q8_0');
    await benchPruneSweep({ model, label: 'generated 175 M MoE, q8_0', contextSize: 128, chunks: 4, rounds: 2 });
    await benchPrunedSpeed({ model, label: 'generated 175 M MoE, q8_0', nPrompt: 128, nGen: 32, rounds: 2 });
  }
}
