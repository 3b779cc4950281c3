// Per-layer expert budgets (docs/budgets.md): does the schedule allocate() picks from a layer scan beat
// random schedules and simple ones with the same mean experts per token?
//
// On the demo model (4 layers, 8 experts, top-2) at a mean of 1.5 experts per token:
//   1. scan() on the first SCAN_CHUNKS chunks of the held-out text (every layer at 1 and 3 experts);
//   2. allocate(scan, { meanExperts: 1.5 });
//   3. on OTHER text (the next EVAL_CHUNKS chunks, never seen by the scan), with its own base of the
//      model's own routing: the allocated schedule, 20 random schedules with the same mean (seeded;
//      each layer 1…n+1 experts, drawn uniformly among the schedules with that sum), the simple
//      schedules (every other layer at 1; first half at 1, second at 2; and the reverse), and — the
//      demo has 4 layers, so there are only 10 such schedules — all of them, to rank the allocation.
// Then the same on a generated 12-layer model (random weights, the demo's tokenizer), where 20 random
// draws are a real sample of the 7,000+ schedules.
// Last, what reusing the unchanged layers < l would save at most (the issue asks): a scan cell with
// layer l changed recomputes layers 0…l−1 unchanged. Timed on generated models with the demo's
// dimensions at 1 and 4 layers: t(L) = a + b·L; a scan over all layers could save at most
// Σ_l l·b / Σ_l t(L) = b(L−1)/2 / (a + bL) of its time if the hidden states entering layer l were cached.
//
// Hold the CPU lock while this runs: flock /tmp/moe-eval-cpu.lock node bench/allocate.mjs
import { mkdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { allocate, createRandomModel, evaluate, loadModel, scan } from '../dist/index.js';
import { demoModel, demoText, line, work } from './lib.mjs';

const C = 256;
const B = 1024;
const SCAN_CHUNKS = Number(process.env.SCAN_CHUNKS ?? 40);
const EVAL_CHUNKS = Number(process.env.EVAL_CHUNKS ?? 80);
const MEAN = 1.5;
const RANDOM = 20;
const dir = join(work, 'allocate');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

function rng(seed) {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Every schedule with values in 1…top and the given sum. */
function allSchedules(L, top, sum) {
  const out = [];
  const walk = (ks, s) => {
    if (ks.length === L) {
      if (s === sum) out.push(ks);
      return;
    }
    for (let k = 1; k <= top; k++) if (s + k + (L - ks.length - 1) <= sum) walk([...ks, k], s + k);
  };
  walk([], 0);
  return out;
}

async function study(name, modelPath, tokens, { seed = 1 } = {}) {
  const model = await loadModel(modelPath);
  const info = model.info;
  const L = info.moeLayers.length;
  const n = info.expertsUsed;
  const scanTokens = tokens.subarray(0, SCAN_CHUNKS * C);
  const evalTokens = tokens.subarray(SCAN_CHUNKS * C, (SCAN_CHUNKS + EVAL_CHUNKS) * C);
  const t0 = Date.now();
  const s = await scan(model, { tokens: scanTokens, contextSize: C, batchSize: B, out: join(dir, `${name}-scan.jsonl`) });
  const scanSeconds = (Date.now() - t0) / 1000;
  const a = allocate(s, { meanExperts: MEAN });
  // the evaluation text's own base: the model's own routing on the held-out chunks
  const base = join(dir, `${name}-eval.kld`);
  await evaluate(model, { tokens: evalTokens, contextSize: C, batchSize: B, saveReference: base });
  const cache = new Map();
  const measure = async (ks) => {
    const key = ks.join(',');
    if (!cache.has(key)) {
      const experts = Array.from({ length: info.layers }, () => n);
      info.moeLayers.forEach((l, i) => (experts[l.layer] = ks[i]));
      const r = await evaluate(model, { reference: base, contextSize: C, batchSize: B, routing: { experts } });
      cache.set(key, r.kld);
    }
    return cache.get(key);
  };
  const predicted = (ks) => s.base.kldMean + ks.reduce((acc, k, i) => acc + (k === n ? 0 : s.kld[i][s.changes.indexOf(`experts=${k}`)] - s.base.kldMean), 0);
  const allocated = a.layers.map((l) => l.experts);
  const sum = Math.round(MEAN * L);
  const space = allSchedules(L, n + 1, sum);
  const r = rng(seed);
  const randoms = Array.from({ length: RANDOM }, () => space[Math.floor(r() * space.length)]);
  const half = Math.floor(L / 2);
  const simple = [
    ['every other layer at 1 (odd layers)', allocated.map((_, i) => (i % 2 === 1 ? 1 : 2))],
    ['every other layer at 1 (even layers)', allocated.map((_, i) => (i % 2 === 0 ? 1 : 2))],
    ['first half 1, second half 2', allocated.map((_, i) => (i < half ? 1 : 2))],
    ['first half 2, second half 1', allocated.map((_, i) => (i < half ? 2 : 1))],
  ];
  const rows = [];
  const am = await measure(allocated);
  rows.push(['allocated', allocated.join(','), predicted(allocated), am]);
  for (const [label, ks] of simple) rows.push([label, ks.join(','), predicted(ks), await measure(ks)]);
  let bestRandom;
  for (const ks of randoms) {
    const m = await measure(ks);
    if (!bestRandom || m.kldMean < bestRandom.m.kldMean) bestRandom = { ks, m };
  }
  rows.push([`best of ${RANDOM} random (${new Set(randoms.map((k) => k.join(','))).size} distinct)`, bestRandom.ks.join(','), predicted(bestRandom.ks), bestRandom.m]);
  const uniform1 = await measure(allocated.map(() => 1));
  rows.push(['uniform 1 (k̄ 1)', allocated.map(() => 1).join(','), predicted(allocated.map(() => 1)), uniform1]);

  console.log(`\n## ${name}: ${info.layers} layers, ${info.expertCount} experts, top-${n}; mean ${MEAN} experts per token`);
  console.log(`scan: ${SCAN_CHUNKS} chunks × ${C}, ${s.cells.length + 1} evaluations, ${scanSeconds.toFixed(1)} s; schedules measured on the next ${EVAL_CHUNKS} chunks (other text) against their own base`);
  console.log('| schedule | experts per layer | predicted KLD (scan text) | measured KLD (other text) | ± | same top |');
  console.log('|---|---|---|---|---|---|');
  for (const [label, ks, p, m] of rows) console.log(`| ${label} | ${ks} | ${p.toFixed(6)} | ${m.kldMean.toFixed(6)} | ${m.kldUnc.toFixed(6)} | ${(100 * m.sameTop).toFixed(2)} % |`);
  if (space.length <= 40) {
    for (const ks of space) await measure(ks);
    const ranked = space.map((ks) => ({ ks, m: cache.get(ks.join(',')).kldMean, p: predicted(ks) })).sort((x, y) => x.m - y.m);
    console.log(`\nall ${space.length} schedules with ${sum} experts over ${L} layers (1…${n + 1} per layer), by measured KLD:`);
    console.log('| rank | experts per layer | predicted KLD | measured KLD |');
    console.log('|---|---|---|---|');
    ranked.forEach((x, i) => console.log(`| ${i + 1} | ${x.ks.join(',')}${x.ks.join(',') === allocated.join(',') ? ' (allocated)' : ''} | ${x.p.toFixed(6)} | ${x.m.toFixed(6)} |`));
  }
  const others = rows.slice(1, -1).map((x) => x[3].kldMean);
  const ratio = am.kldMean / Math.min(...others);
  line(`${name}: allocated KLD / best other (simple, ${RANDOM} random)`, ratio.toFixed(3), { ok: ratio <= 1, text: '< 1; = 1 when a random draw is the allocated schedule' });
  await model.dispose();
}

const tokensOf = async (path) => {
  const m = await loadModel(path);
  try {
    return await m.tokenize(await readFile(demoText, 'utf8'));
  } finally {
    await m.dispose();
  }
};

const demoTokens = await tokensOf(demoModel);
await study('demo', demoModel, demoTokens);

const deep = join(dir, 'generated-12-layers.gguf');
await createRandomModel(deep, { arch: 'llama', layers: 12, embeddingLength: 128, heads: 4, headsKv: 2, feedForwardLength: 128, expertCount: 8, expertsUsed: 2, seed: 21, routerStd: 4, vocabFile: demoModel });
await study('generated 12-layer', deep, demoTokens, { seed: 2 });

// the prefix-reuse ceiling
const timeOf = async (layers) => {
  const path = join(dir, `dims-${layers}.gguf`);
  await createRandomModel(path, { arch: 'llama', layers, embeddingLength: 256, heads: 4, headsKv: 2, feedForwardLength: 256, expertCount: 8, expertsUsed: 2, seed: 3, vocabFile: demoModel });
  const m = await loadModel(path);
  try {
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push((await evaluate(m, { tokens: demoTokens, contextSize: C, batchSize: B, chunks: 20 })).elapsedMs);
    return runs.sort((x, y) => x - y)[1];
  } finally {
    await m.dispose();
  }
};
const t1 = await timeOf(1);
const t4 = await timeOf(4);
const b = (t4 - t1) / 3;
const a0 = t1 - b;
const L = 4;
console.log(`\n## reusing layers < l in a scan (demo dimensions, 20 chunks × ${C}): t(1 layer) ${t1.toFixed(0)} ms, t(4 layers) ${t4.toFixed(0)} ms → ${b.toFixed(0)} ms per layer, ${a0.toFixed(0)} ms outside the layers`);
line('largest share of a 4-layer scan a prefix cache could save', `${((100 * (b * (L - 1)) / 2) / (a0 + b * L)).toFixed(1)} %`);
