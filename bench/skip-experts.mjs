// Does routing to fewer experts make generation faster? tg tokens/s (llama-bench's method, moe-eval bench)
// against k̄, the experts computed per token:
//   - experts m = 1…n: fewer experts in the graph;
//   - -ser Kmin,t: dropped experts skip their matrix multiplications on the CPU (vendor/patches/0004),
//     measured against the same rule with the dropped experts computed and weighted 0
//     (MOE_EVAL_COMPUTE_DROPPED=1, the behaviour before 0004), alternating.
// On the demo model (8 experts, top-2) and on a generated model where the experts dominate the work
// (128 experts, top-8). Hold the CPU lock while this runs; spreads are each row's own stddev.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { bench, createRandomModel, loadModel } from '../dist/index.js';
import { demoModel, line, median, root, work } from './lib.mjs';

/** 2 layers, d 512, expert FFN 1024, 128 experts, top-8, 32k vocabulary: ~0.8 GB in F16, experts ~3/4 of a token's work. */
export async function bigExpertModel() {
  const out = join(work, 'experts-128x8-f16.gguf');
  if (!existsSync(out)) {
    await createRandomModel(out, {
      arch: 'llama', layers: 2, embeddingLength: 512, heads: 8, headsKv: 4, feedForwardLength: 1024, expertCount: 128, expertsUsed: 8, seed: 11,
      routerStd: 1, vocabFile: join(root, 'vendor', 'llama.cpp', 'models', 'ggml-vocab-llama-spm.gguf'),
    });
  }
  return out;
}

async function tg(model, routing, { nGen, repetitions, threads, computeDropped = false }) {
  if (computeDropped) process.env.MOE_EVAL_COMPUTE_DROPPED = '1';
  else delete process.env.MOE_EVAL_COMPUTE_DROPPED;
  try {
    const { rows } = await bench(model, { routings: [routing], tests: [{ nPrompt: 0, nGen }], repetitions, threads });
    return rows[0];
  } finally {
    delete process.env.MOE_EVAL_COMPUTE_DROPPED;
  }
}

const fmt = (r) => `${r.avg_ts.toFixed(1)} ± ${r.stddev_ts.toFixed(1)}`;

export async function benchSkip({ threads = 2, nGen = 64, repetitions = 5, rounds = 3, models } = {}) {
  models ??= [
    { path: demoModel, label: 'demo (8 experts, top-2)', ser: [0.2, 0.5, 0.8], kmin: 1 },
    { path: await bigExpertModel(), label: 'generated (128 experts, top-8)', ser: [0.1, 0.3, 0.5, 0.8], kmin: 1 },
  ];
  const table = [];
  for (const spec of models) {
    const model = await loadModel(spec.path);
    const n = model.info.expertsUsed;
    const opts = { nGen, repetitions, threads };
    const base = await tg(model, undefined, opts);
    line(`tg${nGen} ${spec.label}: default (k̄ ${n})`, `${fmt(base)} t/s`);
    table.push({ model: spec.label, routing: 'default', k: n, skip: base, all: null });
    for (let m = 1; m < n; m++) {
      const r = await tg(model, { experts: m }, opts);
      line(`  experts ${m}`, `${fmt(r)} t/s, × ${(r.avg_ts / base.avg_ts).toFixed(2)} of default`);
      table.push({ model: spec.label, routing: `experts=${m}`, k: m, skip: r, all: null });
    }
    for (const t of spec.ser) {
      const routing = { minExperts: spec.kmin, minWeightRatio: t };
      // alternate skipping and computing, median of the per-round ratios
      const skip = [];
      const all = [];
      for (let i = 0; i < rounds; i++) {
        const order = i % 2 === 0 ? [false, true] : [true, false];
        for (const computeDropped of order) (computeDropped ? all : skip).push(await tg(model, routing, { ...opts, computeDropped }));
      }
      const ratio = median(skip.map((s, i) => s.avg_ts / all[i].avg_ts));
      const s = skip[0];
      line(`  -ser ${spec.kmin},${t}: k̄ ${s.k_mean.toFixed(2)}`, `${fmt(s)} t/s skipping vs ${fmt(all[0])} computing dropped: × ${ratio.toFixed(2)} (median of ${rounds} pairs); × ${(median(skip.map((x) => x.avg_ts)) / base.avg_ts).toFixed(2)} of default`);
      table.push({ model: spec.label, routing: `ser ${spec.kmin},${t}`, k: s.k_mean, skip: s, all: all[0], ratio, ofDefault: median(skip.map((x) => x.avg_ts)) / base.avg_ts });
    }
    await model.dispose();
  }
  return table;
}

/** The table of docs/benchmarks.md. */
export function skipTable(table) {
  const out = ['| model | routing | k̄ | tg t/s (± sd) | × default | computing the dropped experts instead | skip / compute |', '|---|---|---:|---:|---:|---:|---:|'];
  const base = new Map(table.filter((r) => r.routing === 'default').map((r) => [r.model, r.skip.avg_ts]));
  for (const r of table) {
    out.push(`| ${r.model} | ${r.routing} | ${r.k.toFixed(2)} | ${fmt(r.skip)} | ${(r.ofDefault ?? r.skip.avg_ts / base.get(r.model)).toFixed(2)} | ${r.all ? fmt(r.all) : ''} | ${r.ratio ? `× ${r.ratio.toFixed(2)}` : ''} |`);
  }
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(skipTable(await benchSkip()));
