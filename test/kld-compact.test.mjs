// The compact KL-divergence base (docs/kld-compact.md): KLD over the top-K reference tokens plus one tail
// bucket, exact Δp and same top. Checked against a computation in JS from llama.cpp's raw logits, the
// records against the base llama-perplexity writes (every log-probability, read here in JS), the bound
// against the full base, and the same refusals as llama.cpp's format.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MoeEvalError, bench, compare, evaluate, loadModel, readKldBaseHeader, sweep } from '../dist/index.js';
import { dir, fixture, root, sampleText } from './helpers/fixtures.mjs';
import { runLlamaPerplexity } from './helpers/peers.mjs';
import { cli, runCli as run } from './helpers/cli.mjs';

const C = 128;
const CHUNKS = 4;
const K = 32;
const SCORED = C - 1 - C / 2;

let model; // a random 32,000-token MoE
let textFile;
let fullBase; // llama-perplexity's own base (every log-probability)
let compactBase;
before(async () => {
  model = await loadModel(await fixture('llama'));
  textFile = join(dir, 'kldc-text.txt');
  writeFileSync(textFile, sampleText());
  fullBase = join(dir, 'kldc-full.kld');
  compactBase = join(dir, 'kldc-compact.kld');
  await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', String(C), '-b', String(C), '--chunks', String(CHUNKS), '-t', '2', '--kl-divergence-base', fullBase]);
  await evaluate(model, { file: textFile, contextSize: C, batchSize: C, chunks: CHUNKS, threads: 2, saveReference: compactBase, kldTopK: K });
});
after(async () => {
  await model?.dispose();
});

function logSoftmax(row) {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - max);
  const lse = max + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

/** The k largest entries by descending value, ties by ascending id. */
function topK(lp, k) {
  const sorted = Float64Array.from(lp).sort();
  const threshold = sorted[lp.length - k];
  const ids = [];
  for (let i = 0; i < lp.length; i++) if (lp[i] > threshold) ids.push(i);
  for (let i = 0; i < lp.length && ids.length < k; i++) if (lp[i] === threshold) ids.push(i);
  return ids.sort((a, b) => lp[b] - lp[a] || a - b);
}

/** The records of a compact base: { logPToken, logTail, ids, logP, samples, sampleLogP } per scored token. */
async function records(path) {
  const h = await readKldBaseHeader(path);
  const b = readFileSync(path);
  const { topK: k, tailSamples: s } = h;
  const size = 8 + 8 * k + 8 * s;
  const out = [];
  for (let o = h.dataOffset; o < b.length; o += size) {
    const ints = (at, n) => Array.from({ length: n }, (_, r) => b.readInt32LE(o + at + 4 * r));
    const floats = (at, n) => Array.from({ length: n }, (_, r) => b.readFloatLE(o + at + 4 * r));
    out.push({ logPToken: b.readFloatLE(o), logTail: b.readFloatLE(o + 4), ids: ints(8, k), logP: floats(8 + 4 * k, k), samples: ints(8 + 8 * k, s), sampleLogP: floats(8 + 8 * k + 4 * s, s) });
  }
  return out;
}

/**
 * One token, from the raw log-probabilities of the base and of the evaluated model and the record's tail
 * samples: the lower bound B, the estimate B + C, the full KL, Δp, same top (docs/kld-compact.md).
 */
function tokenStats(lpBase, lpQ, tok, k, samples) {
  const ids = topK(lpBase, k);
  const inTop = new Uint8Array(lpBase.length);
  for (const id of ids) inTop[id] = 1;
  let bound = 0;
  for (const id of ids) bound += Math.exp(lpBase[id]) * (lpBase[id] - lpQ[id]);
  let tailBase = 0;
  let tailQ = 0;
  let full = 0;
  let argmaxQ = 0;
  for (let i = 0; i < lpBase.length; i++) {
    full += Math.exp(lpBase[i]) * (lpBase[i] - lpQ[i]);
    if (lpQ[i] > lpQ[argmaxQ]) argmaxQ = i;
    if (!inTop[i]) {
      tailBase += Math.exp(lpBase[i]);
      tailQ += Math.exp(lpQ[i]);
    }
  }
  let estimate = bound;
  if (tailBase > 0) {
    bound += tailBase * Math.log(tailBase / tailQ);
    let c = 0;
    for (const j of samples) {
      const r = lpBase[j] - Math.log(tailBase) - (lpQ[j] - Math.log(tailQ));
      c += r + Math.exp(-r) - 1;
    }
    estimate = bound + (samples.length ? (tailBase * c) / samples.length : 0);
  }
  return { ids, bound, estimate, full, dp: Math.exp(lpQ[tok]) - Math.exp(lpBase[tok]), same: argmaxQ === ids[0], nllBase: -lpBase[tok], tailBase, inTop };
}

/** Every scored row of the default routing (base) and of `routing` (q), from llama.cpp's raw logits, against a compact base's records. */
async function rawRows(routing, base) {
  const h = await readKldBaseHeader(base);
  const recs = await records(base);
  const tokens = h.tokens;
  const V = model.info.vocabSize;
  const ctxBase = await model.createContext({ contextSize: C, batchSize: C, threads: 2 });
  const ctxQ = await model.createContext({ contextSize: C, batchSize: C, threads: 2, routing });
  const out = [];
  try {
    for (let c = 0; c < h.chunks; c++) {
      const input = tokens.slice(c * C, (c + 1) * C);
      input[0] = 1; // the BOS of llama-spm, as llama-perplexity puts it at the start of every chunk
      const lb = await ctxBase.logits(input);
      const lq = await ctxQ.logits(input);
      for (let j = C / 2; j < C - 1; j++) {
        const rec = recs[out.length];
        const lpBase = logSoftmax(lb.subarray(j * V, (j + 1) * V));
        out.push({ ...tokenStats(lpBase, logSoftmax(lq.subarray(j * V, (j + 1) * V)), tokens[c * C + j + 1], h.topK, rec.samples), rec, lpBase });
      }
    }
  } finally {
    await ctxBase.dispose();
    await ctxQ.dispose();
  }
  return out;
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('compact KL-divergence base', () => {
  test('header: the format, K, sizes; ≥ 100× smaller than llama.cpp\'s base on a 32k vocabulary', async () => {
    const h = await readKldBaseHeader(compactBase);
    const f = await readKldBaseHeader(fullBase);
    assert.equal(h.format, 'compact');
    assert.equal(h.topK, K);
    assert.equal(f.format, 'llama');
    assert.equal(h.vocabSize, 32000);
    assert.deepEqual([h.contextSize, h.chunks], [C, CHUNKS]);
    assert.deepEqual(h.tokens, f.tokens);
    const ratio = readFileSync(fullBase).length / readFileSync(compactBase).length;
    assert.ok(ratio > 100, `size ratio ${ratio}`);
  });

  test('records equal the top K of the base llama-perplexity writes (read in JS)', async () => {
    const h = await readKldBaseHeader(compactBase);
    const f = await readKldBaseHeader(fullBase);
    const cb = readFileSync(compactBase);
    const fb = readFileSync(fullBase);
    const V = f.vocabSize;
    const slots = 2 * Math.floor((V + 1) / 2) + 4;
    const rec = 8 + 16 * K;
    assert.equal(h.tailSamples, K);
    for (let t = 0; t < CHUNKS * SCORED; t++) {
      const fo = f.dataOffset + 2 * slots * t;
      const scale = fb.readFloatLE(fo);
      const min = fb.readFloatLE(fo + 4);
      const lpFull = new Float64Array(V);
      for (let i = 0; i < V; i++) lpFull[i] = scale * fb.readUInt16LE(fo + 8 + 2 * i) + min;
      const co = h.dataOffset + rec * t;
      const tol = scale / 2 + 2e-6;
      const chunk = Math.floor(t / SCORED);
      const tok = h.tokens[chunk * C + C / 2 + 1 + (t % SCORED)];
      assert.ok(Math.abs(cb.readFloatLE(co) - lpFull[tok]) <= tol, `token ${t}: log p of the next token`);
      const inTop = new Uint8Array(V);
      let last = Infinity;
      for (let r = 0; r < K; r++) {
        const id = cb.readInt32LE(co + 8 + 4 * r);
        const lp = cb.readFloatLE(co + 8 + 4 * K + 4 * r);
        assert.ok(lp <= last, 'records are sorted by log-probability');
        last = lp;
        inTop[id] = 1;
        assert.ok(Math.abs(lp - lpFull[id]) <= tol, `token ${t} rank ${r}: ${lp} vs ${lpFull[id]}`);
      }
      let tail = 0;
      for (let i = 0; i < V; i++) {
        if (!inTop[i]) {
          assert.ok(lpFull[i] <= last + 2 * tol, `token ${t}: id ${i} outside the top K is above its last entry`);
          tail += Math.exp(lpFull[i]);
        }
      }
      const logTail = cb.readFloatLE(co + 4);
      assert.ok(Math.abs(logTail - Math.log(tail)) <= tol + 1e-5, `token ${t}: log tail ${logTail} vs ${Math.log(tail)}`);
    }
  });

  test('KLD, its lower bound, Δp, same top and PPL(base) equal a JS computation from the raw logits', async () => {
    const routing = { experts: 1 };
    const rows = await rawRows(routing, compactBase);
    const c = (await evaluate(model, { reference: compactBase, batchSize: C, threads: 2, routing })).kld;
    const f = (await evaluate(model, { reference: fullBase, batchSize: C, threads: 2, routing })).kld;
    assert.equal(c.count, rows.length);
    assert.equal(f.kldLowerBound, undefined);
    const close = (a, b, what, rel = 1e-5, abs = 1e-7) => assert.ok(Math.abs(a - b) <= abs + rel * Math.abs(b), `${what}: ${a} vs ${b}`);
    close(c.kldMean, mean(rows.map((r) => r.estimate)), 'mean KLD (B + C)');
    close(c.kldLowerBound, mean(rows.map((r) => r.bound)), 'mean lower bound B');
    close(c.kldMax, Math.max(...rows.map((r) => r.estimate)), 'max KLD');
    close(c.dpMean, mean(rows.map((r) => r.dp)), 'mean Δp', 1e-4, 1e-8);
    close(c.dpRms, Math.sqrt(mean(rows.map((r) => r.dp * r.dp))), 'RMS Δp');
    assert.equal(Math.round(c.sameTop * c.count), rows.filter((r) => r.same).length, 'same top');
    close(Math.log(c.basePerplexity), mean(rows.map((r) => r.nllBase)), 'ln PPL(base)');
    close(c.perplexity, f.perplexity, 'PPL(Q) is the same either way', 1e-6);
    // the records: the top K of the raw logits, exactly; tail samples outside them, placed by systematic
    // sampling (one offset u0 for all S points on the tail's cumulative mass in id order)
    for (const r of rows) {
      assert.deepEqual(r.rec.ids, r.ids);
      const cum = new Float64Array(r.lpBase.length + 1);
      for (let i = 0; i < r.lpBase.length; i++) cum[i + 1] = cum[i] + (r.inTop[i] ? 0 : Math.exp(r.lpBase[i]));
      let lo = 0;
      let hi = 1;
      r.rec.samples.forEach((id, s) => {
        assert.equal(r.inTop[id], 0, 'a tail sample is outside the top K');
        lo = Math.max(lo, (cum[id] / r.tailBase) * K - s);
        hi = Math.min(hi, (cum[id + 1] / r.tailBase) * K - s);
      });
      assert.ok(lo <= hi + 1e-6, `no single offset places these samples: [${lo}, ${hi}]`);
    }
    // the bound, per token (log-sum inequality), and on the native results against the full base
    for (const r of rows) assert.ok(r.bound <= r.full + 1e-9, `bound ${r.bound} > full ${r.full}`);
    assert.ok(c.kldLowerBound <= f.kldMean * (1 + 5e-3), `lower bound ${c.kldLowerBound} above full ${f.kldMean}`);
    assert.ok(c.kldLowerBound <= c.kldMean, 'the tail estimate C is ≥ 0');
    // a random model's near-uniform output is the worst case for a top-K base: most of the KL is in the
    // tail, and the estimate comes from S samples per token (here 252 tokens × 32)
    assert.ok(Math.abs(c.kldMean / f.kldMean - 1) < 0.05, `estimate ${c.kldMean} vs full ${f.kldMean}`);
    // llama.cpp's base rounds log-probabilities to 16 bits (kld.test.mjs: 2e-3 against raw logits)
    assert.ok(Math.abs(mean(rows.map((r) => r.full)) / f.kldMean - 1) < 5e-3, 'the JS full KL is llama.cpp\'s');
  });

  test('a compact base made by a routing against itself: KLD 0, same top 100 %', async () => {
    const r = await evaluate(model, { reference: compactBase, batchSize: C, threads: 2 });
    assert.ok(Math.abs(r.kld.kldMean) < 1e-5, `${r.kld.kldMean}`);
    assert.equal(r.kld.sameTop, 1);
    assert.ok(Math.abs(r.kld.dpRms) < 1e-6);
  });

  test('K at or above the vocabulary keeps every token: no tail, the full KL', async () => {
    const small = join(dir, 'kldc-all.kld');
    const demo = await loadModel(join(root, 'models', 'demo', 'moe-demo.gguf'));
    try {
      const text = readFileSync(join(root, 'models', 'demo', 'heldout.txt'), 'utf8').slice(0, 20000);
      await evaluate(demo, { text, contextSize: 64, batchSize: 64, chunks: 3, threads: 2, saveReference: small, kldTopK: 100000 });
      const h = await readKldBaseHeader(small);
      assert.equal(h.topK, demo.info.vocabSize);
      const b = readFileSync(small);
      assert.equal(h.tailSamples, 0);
      for (let t = 0; t < 3 * (64 - 1 - 32); t++) assert.equal(b.readFloatLE(h.dataOffset + t * (8 + 8 * h.topK) + 4), -Infinity);
      const full = join(dir, 'kldc-demo-full.kld');
      await evaluate(demo, { text, contextSize: 64, batchSize: 64, chunks: 3, threads: 2, saveReference: full });
      const a = (await evaluate(demo, { reference: small, batchSize: 64, threads: 2, routing: { experts: 1 } })).kld;
      const f = (await evaluate(demo, { reference: full, batchSize: 64, threads: 2, routing: { experts: 1 } })).kld;
      // llama.cpp's full base rounds to 16 bits and skips tokens below e^-16; this one is the float KL
      assert.ok(Math.abs(a.kldMean / f.kldMean - 1) < 1e-2, `${a.kldMean} vs ${f.kldMean}`);
      assert.ok(Math.abs(a.kldLowerBound - a.kldMean) <= 1e-12 * a.kldMean, 'no tail: the bound is the KLD');
    } finally {
      await demo.dispose();
    }
  });

  test('truncated, foreign or damaged compact files are typed errors', async () => {
    const bytes = readFileSync(compactBase);
    const truncated = join(dir, 'kldc-truncated.kld');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(evaluate(model, { reference: truncated, threads: 2 }), (e) => e instanceof MoeEvalError && e.code === 'ERR_KLD_BASE' && /should be \d+ bytes/.test(e.message));
    const short = join(dir, 'kldc-short.kld');
    writeFileSync(short, bytes.subarray(0, 20));
    await assert.rejects(evaluate(model, { reference: short, threads: 2 }), { code: 'ERR_KLD_BASE' });
    const version = join(dir, 'kldc-version.kld');
    const v = Buffer.from(bytes);
    v.writeUInt32LE(2, 8);
    writeFileSync(version, v);
    await assert.rejects(evaluate(model, { reference: version, threads: 2 }), { code: 'ERR_KLD_BASE', message: /version 2/ });
    const badK = join(dir, 'kldc-k.kld');
    const k = Buffer.from(bytes);
    k.writeUInt32LE(K + 1, 28);
    writeFileSync(badK, k);
    await assert.rejects(evaluate(model, { reference: badK, threads: 2 }), { code: 'ERR_KLD_BASE', message: /implausible compact header/ });
    const foreign = join(dir, 'kldc-foreign.kld');
    const g = Buffer.from(bytes);
    g.write('_kldtup_', 0, 'latin1');
    writeFileSync(foreign, g);
    await assert.rejects(evaluate(model, { reference: foreign, threads: 2 }), { code: 'ERR_KLD_BASE', message: /not a KL-divergence base/ });
    // right size, a token id outside the vocabulary in the third chunk: found while reading
    const damaged = join(dir, 'kldc-damaged.kld');
    const d = Buffer.from(bytes);
    const h = await readKldBaseHeader(compactBase);
    d.writeInt32LE(999999, h.dataOffset + (2 * SCORED + 5) * (8 + 16 * K) + 8 + 4 * 3);
    writeFileSync(damaged, d);
    await assert.rejects(evaluate(model, { reference: damaged, threads: 2 }), { code: 'ERR_KLD_BASE', message: /damaged in chunk 2/ });
  });

  test('a compact base of another text, context size or vocabulary is refused like llama.cpp\'s', async () => {
    await assert.rejects(evaluate(model, { reference: compactBase, contextSize: 64, threads: 2 }), { code: 'ERR_KLD_BASE', message: /contextSize 128/ });
    await assert.rejects(evaluate(model, { reference: compactBase, text: 'something else entirely. '.repeat(200), threads: 2 }), { code: 'ERR_KLD_BASE', message: /does not tokenize to the tokens/ });
    await assert.rejects(evaluate(model, { reference: compactBase, threads: 2, chunks: CHUNKS + 1 }), RangeError);
    const demo = await loadModel(join(root, 'models', 'demo', 'moe-demo.gguf'));
    try {
      await assert.rejects(evaluate(demo, { reference: compactBase, threads: 2 }), { code: 'ERR_KLD_BASE', message: /vocabulary of 32000/ });
    } finally {
      await demo.dispose();
    }
  });

  test('kldTopK is validated where it is accepted and refused where nothing is written', async () => {
    await assert.rejects(evaluate(model, { file: textFile, kldTopK: 8 }), { name: 'TypeError', message: /saveReference/ });
    await assert.rejects(evaluate(model, { file: textFile, saveReference: join(dir, 'x.kld'), kldTopK: 0 }), { name: 'RangeError', message: /kldTopK/ });
    await assert.rejects(evaluate(model, { file: textFile, saveReference: join(dir, 'x.kld'), kldTopK: 2.5 }), { name: 'TypeError', message: /kldTopK/ });
    await assert.rejects(sweep(model, { file: textFile, out: join(dir, 'kldc-sw-bad.jsonl'), routings: [{}], reference: compactBase, kldTopK: 8 }), { name: 'TypeError', message: /kldTopK/ });
    await assert.rejects(sweep(model, { file: textFile, out: join(dir, 'kldc-sw-bad.jsonl'), routings: [{}], kldTopK: 8 }), { name: 'TypeError', message: /kldTopK/ });
    await assert.rejects(compare({ models: [model.path], file: textFile, kldTopK: -1 }), { name: 'RangeError', message: /kldTopK/ });
    await assert.rejects(bench(model, { kld: { file: textFile }, kldTopK: 8 }), { name: 'TypeError', message: /kldTopK/ });
    assert.equal(existsSync(join(dir, 'x.kld')), false);
  });

  test('sweep writes its default-routing base compact, reuses it, and rewrites a base of another format', async () => {
    const out = join(dir, 'kldc-sweep.jsonl');
    const opts = { file: textFile, out, contextSize: C, batchSize: C, chunks: CHUNKS, threads: 2, routings: [{ experts: 1 }], reference: 'default', kldTopK: K };
    const r = await sweep(model, opts);
    const h = await readKldBaseHeader(`${out}.base.kld`);
    assert.deepEqual([h.format, h.topK], ['compact', K]);
    const direct = await evaluate(model, { reference: compactBase, batchSize: C, threads: 2, routing: { experts: 1 } });
    assert.ok(Math.abs(r.rows[0].kldMean - direct.kld.kldMean) < 1e-9, `${r.rows[0].kldMean} vs ${direct.kld.kldMean}`);
    // another format: other results (the results file refuses to mix them) and the base is rewritten
    const out2 = join(dir, 'kldc-sweep2.jsonl');
    writeFileSync(`${out2}.base.kld`, readFileSync(fullBase));
    const r2 = await sweep(model, { ...opts, out: out2, kldTopK: 8 });
    assert.equal((await readKldBaseHeader(`${out2}.base.kld`)).topK, 8);
    await assert.rejects(sweep(model, { ...opts, kldTopK: 8 }), { code: 'ERR_FILE', message: /results of another model, text or settings/ });
  });

  test('compare writes its reference compact (a file of its own in the cache)', async () => {
    const cacheDir = join(dir, 'kldc-cache');
    const r = await compare({ models: [model.path], file: textFile, contextSize: C, batchSize: C, chunks: 2, threads: 2, routings: [{}, { experts: 1 }], cacheDir, kldTopK: K });
    assert.match(r.referenceFile, new RegExp(`\\.top${K}\\.kld$`));
    const h = await readKldBaseHeader(r.referenceFile);
    assert.deepEqual([h.format, h.topK], ['compact', K]);
    assert.ok(r.rows[1].kldMean > 0);
    assert.match(r.settings.reference, /compact base, top 32/);
    assert.ok(readdirSync(cacheDir).some((f) => f.endsWith(`.top${K}.kld`)));
  });
});

// ---- the CLI: --kld-top-k in every command that writes a base, refused where none is written ----

describe('--kld-top-k on the command line', () => {
  const sizes = ['-c', '64', '-b', '64', '-t', '2', '--chunks', '3'];
  test('perplexity writes a compact base with --kl-divergence-base and reads it back with --kl-divergence', async () => {
    const base = join(dir, 'cli-kldc', 'base.kld');
    const w = await run(['perplexity', '-m', model.path, '-f', textFile, ...sizes, '--kl-divergence-base', base, '--kld-top-k', '16', '--json']);
    assert.equal(w.code, 0, w.stderr);
    const h = await readKldBaseHeader(base);
    assert.deepEqual([h.format, h.topK, h.chunks], ['compact', 16, 3]);
    const r = await run(['perplexity', '-m', model.path, '-b', '64', '-t', '2', '--kl-divergence-base', base, '--kl-divergence', '--experts', '1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.ok(j.kld.kldMean > 0 && j.kld.count === 3 * 31, JSON.stringify(j.kld));
    const refused = await run(['perplexity', '-m', model.path, '-t', '2', '--kl-divergence-base', base, '--kl-divergence', '--kld-top-k', '16']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--kld-top-k sets the format of the base --kl-divergence-base writes/);
    const alone = await run(['perplexity', '-m', model.path, '-f', textFile, ...sizes, '--kld-top-k', '16']);
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /--kld-top-k/);
    const bad = await run(['perplexity', '-m', model.path, '-f', textFile, ...sizes, '--kl-divergence-base', join(dir, 'cli-kldc', 'b2.kld'), '--kld-top-k', '0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--kld-top-k/);
    assert.equal(existsSync(join(dir, 'cli-kldc', 'b2.kld')), false);
  });

  test('sweep --kld --kld-top-k writes the base beside --out compact; without --kld it is refused', async () => {
    const out = join(dir, 'cli-kldc', 'sweep.jsonl');
    const r = await run(['sweep', '-m', model.path, '-f', textFile, ...sizes, '-o', out, '--experts', '1', '2', '--kld', '--kld-top-k', '16', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await readKldBaseHeader(`${out}.base.kld`)).topK, 16);
    assert.ok(JSON.parse(r.stdout).rows.some((x) => x.kldMean > 0));
    const refused = await run(['sweep', '-m', model.path, '-f', textFile, ...sizes, '-o', join(dir, 'cli-kldc', 's2.jsonl'), '--experts', '1', '--kld-top-k', '16']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /give --kld/);
  });

  test('compare --kld-top-k writes the cached reference compact', async () => {
    const cache = join(dir, 'cli-kldc', 'cache');
    const r = await run(['compare', '-m', model.path, '-f', textFile, ...sizes, '--experts', '1', '--cache-dir', cache, '--report', join(dir, 'cli-kldc', 'report'), '--kld-top-k', '16', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal((await readKldBaseHeader(j.referenceFile)).topK, 16);
    assert.ok(j.rows[0].kldMean > 0);
  });

  test('bench and demo refuse it: they write no base', async () => {
    const b = await run(['bench', '-m', model.path, '-p', '8', '-n', '0', '-r', '1', '--kld', textFile, '--kld-top-k', '16']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /bench --kld compares with the default routing in memory/);
    const d = await run(['demo', '--kld-top-k', '16']);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /kld-top-k/);
  });
});
