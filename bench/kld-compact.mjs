// The compact KL-divergence base (docs/kld-compact.md) against llama.cpp's full base, measured in the
// same run on the same tokens: file size ratio, and for every evaluated variant the relative error of
// mean KLD (the estimate B + C, and the lower bound B alone), the change of Δp (mean, RMS) and same top.
//   node bench/kld-compact.mjs [--chunks N] [--chunks-32k N] [--ctx N] [--k 8,16,32,64] [--only demo|random-32k]
// On the demo model (4,096 tokens, trained) and on a generated 32,000-token MoE (random weights: its
// outputs are nearly uniform, the worst case for a top-K base). Hold the CPU lock while this runs.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { createRandomModel, evaluate, loadModel, quantizeModel, readKldBaseHeader } from '../dist/index.js';
import { demoModel, demoText, machine, root, work } from './lib.mjs';

const { values: args } = parseArgs({ options: { chunks: { type: 'string', default: '16' }, 'chunks-32k': { type: 'string', default: '8' }, ctx: { type: 'string', default: '512' }, k: { type: 'string', default: '8,16,32,64' }, threads: { type: 'string', default: '2' }, only: { type: 'string' } } });
const CTX = Number(args.ctx);
const KS = args.k.split(',').map(Number);
const THREADS = Number(args.threads);

/** 2 layers, d 128, 8 experts top-2, llama.cpp's 32,000-token llama-spm vocabulary. */
async function random32k() {
  const out = join(work, 'kldc-random-32k.gguf');
  if (!existsSync(out)) {
    await createRandomModel(out, {
      arch: 'llama', layers: 2, embeddingLength: 128, heads: 4, headsKv: 2, feedForwardLength: 128, expertCount: 8, expertsUsed: 2, seed: 3, routerStd: 4,
      vocabFile: join(root, 'vendor', 'llama.cpp', 'models', 'ggml-vocab-llama-spm.gguf'),
    });
  }
  return out;
}

/** Mean over the scored tokens of a compact base: the reference's mass in its top K (1 − tail). */
async function topMass(path) {
  const h = await readKldBaseHeader(path);
  const b = await readFile(path);
  const rec = 8 + 8 * h.topK + 8 * h.tailSamples;
  const n = (b.length - h.dataOffset) / rec;
  let s = 0;
  for (let t = 0; t < n; t++) s += 1 - Math.exp(b.readFloatLE(h.dataOffset + t * rec + 4));
  return s / n;
}

/** Mean entropy (nats) of the reference from llama.cpp's base (log-probabilities above max − 16). */
async function entropy(path) {
  const h = await readKldBaseHeader(path);
  const b = await readFile(path);
  const slots = 2 * Math.floor((h.vocabSize + 1) / 2) + 4;
  const n = (b.length - h.dataOffset) / (2 * slots);
  let s = 0;
  for (let t = 0; t < n; t++) {
    const o = h.dataOffset + 2 * slots * t;
    const scale = b.readFloatLE(o);
    const min = b.readFloatLE(o + 4);
    for (let i = 0; i < h.vocabSize; i++) {
      const lp = scale * b.readUInt16LE(o + 8 + 2 * i) + min;
      if (lp > -16) s -= Math.exp(lp) * lp;
    }
  }
  return s / n;
}

const pct = (x) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(3)} %`;

async function measure(label, modelPath, variants, CHUNKS) {
  const model = await loadModel(modelPath);
  const text = await readFile(demoText, 'utf8');
  const sizes = { contextSize: CTX, batchSize: CTX, threads: THREADS, chunks: CHUNKS };
  const fullPath = join(work, `kldc-${label}-full.kld`);
  await evaluate(model, { text, ...sizes, saveReference: fullPath });
  const fullSize = statSync(fullPath).size;
  const compact = [];
  for (const k of KS) {
    const path = join(work, `kldc-${label}-top${k}.kld`);
    await evaluate(model, { text, ...sizes, saveReference: path, kldTopK: k });
    compact.push({ k, path, size: statSync(path).size, mass: await topMass(path) });
  }
  console.log(`\n${label}: vocabulary ${model.info.vocabSize}, ${CHUNKS} chunks of ${CTX} (${CHUNKS * (CTX - 1 - CTX / 2)} scored tokens), reference entropy ${(await entropy(fullPath)).toFixed(3)} nats`);
  console.log(`  llama.cpp base ${(fullSize / 2 ** 20).toFixed(1)} MiB`);
  for (const c of compact) console.log(`  top ${String(c.k).padStart(3)}: ${(c.size / 2 ** 20).toFixed(3)} MiB, ${(fullSize / c.size).toFixed(1)}× smaller, top-K mass ${(100 * c.mass).toFixed(2)} %`);
  const rows = [];
  for (const v of variants) {
    const target = v.model ? await loadModel(v.model) : model;
    try {
      const f = (await evaluate(target, { reference: fullPath, batchSize: CTX, threads: THREADS, routing: v.routing ?? {} })).kld;
      for (const c of compact) {
        const r = (await evaluate(target, { reference: c.path, batchSize: CTX, threads: THREADS, routing: v.routing ?? {} })).kld;
        rows.push({ variant: v.label, k: c.k, full: f.kldMean, unc: f.kldUnc / f.kldMean, compact: r.kldMean, rel: r.kldMean / f.kldMean - 1, bound: r.kldLowerBound / f.kldMean - 1, dpMean: r.dpMean - f.dpMean, dpRms: r.dpRms - f.dpRms, sameTop: r.sameTop - f.sameTop });
      }
    } finally {
      if (v.model) await target.dispose();
    }
  }
  console.log(`  ${'variant'.padEnd(18)} ${'K'.padStart(4)} ${'full KLD'.padStart(10)} ${'compact'.padStart(10)} ${'rel. error'.padStart(11)} ${'KLD ± rel.'.padStart(11)} ${'bound B'.padStart(11)}  ${'Δ mean Δp'.padStart(10)} ${'Δ RMS Δp'.padStart(10)} ${'Δ same top'.padStart(10)}`);
  for (const r of rows) {
    console.log(`  ${r.variant.padEnd(18)} ${String(r.k).padStart(4)} ${r.full.toFixed(6).padStart(10)} ${r.compact.toFixed(6).padStart(10)} ${pct(r.rel).padStart(11)} ${`${(100 * r.unc).toFixed(2)} %`.padStart(11)} ${pct(r.bound).padStart(11)}  ${r.dpMean.toExponential(1).padStart(10)} ${r.dpRms.toExponential(1).padStart(10)} ${pct(r.sameTop).padStart(10)}`);
  }
  await model.dispose();
  return { fullSize, compact, rows };
}

console.log(`compact KLD base vs llama.cpp's — ${machine()} — ${new Date().toISOString()}`);
const q4 = join(work, 'kldc-demo-q4_0.gguf');
if (!existsSync(q4)) await quantizeModel(demoModel, q4, { type: 'q4_0' });
const q2 = join(work, 'kldc-demo-q2_k.gguf');
if (!existsSync(q2)) await quantizeModel(demoModel, q2, { type: 'q2_k' });
if (args.only !== 'random-32k') await measure('demo', demoModel, [
  { label: 'experts=1', routing: { experts: 1 } },
  { label: 'experts=3', routing: { experts: 3 } },
  { label: 'q4_0', model: q4 },
  { label: 'q2_k', model: q2 },
], Number(args.chunks));
if (args.only !== 'demo') await measure('random-32k', await random32k(), [
  { label: 'experts=1', routing: { experts: 1 } },
  { label: 'experts=4', routing: { experts: 4 } },
  { label: 'gate-scale=0.25', routing: { gateScale: 0.25 } },
], Number(args['chunks-32k']));
