#!/usr/bin/env node
// Does the routing during importance-matrix collection change the quality of the quants made with it?
// On the demo model: imatrix collected on one part of the held-out text (default routing; experts: 4;
// experts: 8; computeExperts: 4 = four experts computed, the model's two mixed), quantized to q2_k,
// iq2_xxs, iq3_xxs, and measured by KL-divergence against the F16 model on another part of the text.
// Two calibration sizes: a large one, and a small one where rarely chosen experts get few tokens.
// Numbers go to docs/quantization.md.
//
// --fixture: instead of the demo model, a random-weight MoE with a peaked router (16 experts, top-2,
// routerStd 8; createRandomModel) where a small calibration leaves experts with no tokens at all
// (llama.cpp's "partial data"): the case more experts per token during collection is meant for.
//
//   node scripts/imatrix-routing.mjs [--fixture] [--threads N] [--json]
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createRandomModel, evaluate, imatrix, imatrixCoverage, loadModel, quantizeModel } from '../dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(root, '.moe-eval-cache', 'imatrix-routing');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const args = process.argv.slice(2);
const threads = args.includes('--threads') ? { threads: Number(args[args.indexOf('--threads') + 1]) } : {};
const useFixture = args.includes('--fixture');
let src = join(root, 'models', 'demo', 'moe-demo.gguf');
if (useFixture) {
  src = join(work, 'peaked-router.gguf');
  await createRandomModel(src, { arch: 'llama', layers: 4, embeddingLength: 256, heads: 4, headsKv: 2, feedForwardLength: 256, expertCount: 16, expertsUsed: 2, seed: 3, routerStd: 8 });
}
const c = useFixture ? 128 : 256;
const evalChunks = 40;

const model = await loadModel(src);
const all = await model.tokenize(readFileSync(join(root, 'models', 'demo', 'heldout.txt'), 'utf8'));
// evaluate on the first 40 chunks (as `moe-eval demo` does), calibrate on the rest
const evalTokens = all.subarray(0, evalChunks * c);
const calibTokens = all.subarray(evalTokens.length);
const base = join(work, 'f16.kld');
const f16 = await evaluate(model, { tokens: evalTokens, contextSize: c, batchSize: 4 * c, ...threads, saveReference: base });

const calibrations = [
  { label: 'large', chunks: Math.min(Math.floor(calibTokens.length / c), useFixture ? 100 : Infinity) },
  { label: 'small', chunks: useFixture ? 2 : 4 },
];
const collections = [
  { label: 'default routing', options: {} },
  { label: 'experts=4', options: { routing: { experts: 4 } } },
  { label: 'experts=8', options: { routing: { experts: 8 } } },
  { label: 'computeExperts=4', options: { computeExperts: 4 } },
];
const types = ['q2_k', 'iq3_xxs', 'iq2_xxs'];

const rows = [];
async function measure(type, calibration, collection, imatrixFile, coverage) {
  const out = join(work, `${type}-${rows.length}.gguf`);
  await quantizeModel(src, out, { type, ...(imatrixFile ? { imatrix: imatrixFile } : {}), ...threads });
  const q = await loadModel(out);
  try {
    const r = await evaluate(q, { tokens: evalTokens, contextSize: c, batchSize: 4 * c, ...threads, reference: base });
    const row = {
      type, calibration, collection, bitsPerWeight: +q.info.bitsPerWeight.toFixed(3),
      perplexity: +r.perplexity.toFixed(4), kldMean: +r.kld.kldMean.toFixed(5), kldUnc: +r.kld.kldUnc.toFixed(5), kld99: +r.kld.kld99.toFixed(4),
      sameTop: +(100 * r.kld.sameTop).toFixed(2), ...coverage,
    };
    rows.push(row);
    process.stderr.write(JSON.stringify(row) + '\n');
  } finally {
    await q.dispose();
    rmSync(out, { force: true });
  }
}

await measure('q2_k', '-', 'no imatrix', undefined, {});
for (const cal of calibrations) {
  for (const col of collections) {
    const file = join(work, `imatrix-${cal.label}-${col.label.replace(/[^a-z0-9]+/gi, '_')}.gguf`);
    const m = await imatrix(model, { tokens: calibTokens, contextSize: c, batchSize: 4 * c, chunks: cal.chunks, ...threads, ...col.options, out: file });
    const cov = imatrixCoverage(m);
    const minTokens = Math.min(...cov.layers.flatMap((l) => l.experts));
    const coverage = { calibrationTokens: m.tokens, expertsBelow10pct: cov.below.length, fewestExpertTokens: minTokens, expertsWithNoTokens: cov.layers.reduce((a, l) => a + l.experts.filter((x) => x === 0).length, 0) };
    for (const type of types) await measure(type, cal.label, col.label, file, coverage);
  }
}
await model.dispose();

if (args.includes('--json')) {
  console.log(JSON.stringify({ f16Perplexity: f16.perplexity, evalTokens: evalTokens.length, rows }, null, 2));
} else {
  console.log(`${useFixture ? 'peaked-router fixture (F32)' : 'demo model (F16)'}: perplexity ${f16.perplexity.toFixed(4)} on ${evalTokens.length} tokens (${evalChunks} chunks of ${c})`);
  console.table(rows);
}
