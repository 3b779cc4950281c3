// KL-divergence: llama-perplexity's statistics, its base-file format in both directions, and an
// independent check from raw logits.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MoeEvalError, evaluate, exportModel, loadModel, quantizeModel } from '../dist/index.js';
import { dir, fixture, sampleText } from './helpers/fixtures.mjs';
import { runLlamaPerplexity } from './helpers/peers.mjs';

let model;
let q; // the same weights routed with one expert, baked into a file so llama-perplexity can run it too
let textFile;
before(async () => {
  model = await loadModel(await fixture('llama'));
  const qPath = join(dir, 'kld-q.gguf');
  await exportModel(model, qPath, { routing: { experts: 1 } });
  q = await loadModel(qPath);
  textFile = join(dir, 'kld-text.txt');
  writeFileSync(textFile, sampleText());
});
after(async () => {
  await q?.dispose();
  await model?.dispose();
});

const C = 128;
const B = 256;
const CHUNKS = 6;

function parseKld(output) {
  const num = (re) => Number(re.exec(output)?.[1]);
  return {
    ppl: num(/Mean PPL\(Q\)\s*:\s*([0-9.]+)/),
    pplBase: num(/Mean PPL\(base\)\s*:\s*([0-9.]+)/),
    kldMean: num(/Mean\s+KLD:\s*([0-9.-]+)/),
    kldMax: num(/Maximum KLD:\s*([0-9.-]+)/),
    kld99: num(/99\.0%\s+KLD:\s*([0-9.-]+)/),
    kldMedian: num(/Median\s+KLD:\s*([0-9.-]+)/),
    sameTop: num(/Same top p:\s*([0-9.]+)/) / 100,
    dpRms: num(/RMS Δp\s*:\s*([0-9.]+)/) / 100,
  };
}

describe('KL-divergence', () => {
  test('a model against itself: KLD 0, same top 100 %, ratio 1', async () => {
    const r = await evaluate(model, { file: textFile, contextSize: C, batchSize: B, chunks: CHUNKS, threads: 2, reference: model });
    assert.ok(r.kld);
    assert.ok(Math.abs(r.kld.kldMean) < 1e-4, `mean KLD ${r.kld.kldMean}`);
    assert.equal(r.kld.sameTop, 1);
    assert.ok(Math.abs(r.kld.ratio - 1) < 1e-4);
    assert.equal(r.kld.count, CHUNKS * (C - 1 - C / 2));
  });

  test('a quantized model against its f32 original: statistics match a computation from raw logits', async () => {
    const q = await loadModel(await quantizeModel(model.path, join(dir, 'kld-q4_0.gguf'), { type: 'q4_0', threads: 2 }));
    const r = await evaluate(q, { file: textFile, contextSize: C, batchSize: B, chunks: CHUNKS, threads: 2, reference: model });
    const tokens = await model.tokenize(sampleText());
    const V = model.info.vocabSize;
    const ctxBase = await model.createContext({ contextSize: C, batchSize: C, threads: 2 });
    const ctxQ = await q.createContext({ contextSize: C, batchSize: C, threads: 2 });
    let kldSum = 0;
    let same = 0;
    let n = 0;
    const logSoftmax = (row) => {
      let max = -Infinity;
      for (const x of row) max = Math.max(max, x);
      let s = 0;
      for (const x of row) s += Math.exp(x - max);
      const lse = max + Math.log(s);
      return Array.from(row, (x) => x - lse);
    };
    for (let c = 0; c < CHUNKS; c++) {
      const input = tokens.slice(c * C, (c + 1) * C);
      input[0] = model.info.addBos ? 1 : input[0];
      const lb = await ctxBase.logits(input);
      const lq = await ctxQ.logits(input);
      for (let j = C / 2; j < C - 1; j++) {
        const pb = logSoftmax(lb.subarray(j * V, (j + 1) * V));
        const pq = logSoftmax(lq.subarray(j * V, (j + 1) * V));
        let k = 0;
        let ab = 0;
        let aq = 0;
        for (let v = 0; v < V; v++) {
          k += Math.exp(pb[v]) * (pb[v] - pq[v]);
          if (pb[v] > pb[ab]) ab = v;
          if (pq[v] > pq[aq]) aq = v;
        }
        kldSum += k;
        same += ab === aq ? 1 : 0;
        n++;
      }
    }
    await ctxBase.dispose();
    await ctxQ.dispose();
    assert.equal(r.kld.count, n);
    assert.ok(r.kld.kldMean > 1e-4, `4-bit weights should move the distribution (KLD ${r.kld.kldMean})`);
    // the base is stored as 16-bit log-probabilities over the top 16 nats, as llama.cpp does
    assert.ok(Math.abs(r.kld.kldMean / (kldSum / n) - 1) < 2e-3, `KLD ${r.kld.kldMean} vs raw ${kldSum / n}`);
    assert.ok(Math.abs(r.kld.sameTop - same / n) <= 1 / n, `same top ${r.kld.sameTop} vs ${same / n}`);
    assert.ok(Math.abs(r.kld.perplexity / r.perplexity - 1) < 1e-6);
    assert.ok(r.kld.kldMin <= r.kld.kldMedian && r.kld.kldMedian <= r.kld.kld99 && r.kld.kld99 <= r.kld.kldMax);
    await q.dispose();
  });

  test('a base written by llama-perplexity gives llama-perplexity\'s statistics here', async () => {
    const basePath = join(dir, 'llama-base.kld');
    await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', String(C), '-b', String(B), '--chunks', String(CHUNKS), '-t', '2', '--kl-divergence-base', basePath]);
    const peer = parseKld((await runLlamaPerplexity(['-m', q.path, '-c', String(C), '-b', String(B), '-t', '2', '--kl-divergence-base', basePath, '--kl-divergence'])).output);
    const r = await evaluate(q, { reference: basePath, batchSize: B, threads: 2 });
    assert.equal(r.contextSize, C);
    const close = (a, b, what) => assert.ok(Math.abs(a - b) <= 2e-6 + 1e-5 * Math.abs(b), `${what}: moe-eval ${a} vs llama-perplexity ${b}`);
    close(r.kld.perplexity, peer.ppl, 'PPL(Q)');
    close(r.kld.basePerplexity, peer.pplBase, 'PPL(base)');
    close(r.kld.kldMean, peer.kldMean, 'mean KLD');
    close(r.kld.kldMax, peer.kldMax, 'max KLD');
    close(r.kld.kld99, peer.kld99, '99% KLD');
    close(r.kld.kldMedian, peer.kldMedian, 'median KLD');
    close(r.kld.sameTop, peer.sameTop, 'same top');
    close(r.kld.dpRms, peer.dpRms, 'RMS Δp');
  });

  test('a base written here is byte-identical to llama-perplexity\'s and works there', async () => {
    const ours = join(dir, 'ours-base.kld');
    const theirs = join(dir, 'theirs-base.kld');
    const r = await evaluate(model, { file: textFile, contextSize: C, batchSize: B, chunks: CHUNKS, threads: 2, saveReference: ours });
    assert.equal(r.savedReference, ours);
    await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', String(C), '-b', String(B), '--chunks', String(CHUNKS), '-t', '2', '--kl-divergence-base', theirs]);
    assert.equal(Buffer.compare(readFileSync(ours), readFileSync(theirs)), 0, 'base files differ');
    const peer = parseKld((await runLlamaPerplexity(['-m', q.path, '-c', String(C), '-b', String(B), '-t', '2', '--kl-divergence-base', ours, '--kl-divergence'])).output);
    assert.ok(peer.kldMean > 0.01);
  });

  test('a mismatched base is refused with a clear error', async () => {
    const basePath = join(dir, 'ours-base.kld');
    await assert.rejects(evaluate(q, { reference: basePath, contextSize: 64, threads: 2 }), { code: 'ERR_KLD_BASE', message: /contextSize 128/ });
    await assert.rejects(evaluate(q, { reference: basePath, text: 'something else entirely. '.repeat(200), threads: 2 }), { code: 'ERR_KLD_BASE', message: /does not tokenize to the tokens/ });
    const bad = join(dir, 'bad.kld');
    writeFileSync(bad, readFileSync(basePath).subarray(0, 1000));
    await assert.rejects(evaluate(q, { reference: bad, threads: 2 }), (e) => e instanceof MoeEvalError && e.code === 'ERR_KLD_BASE' && /should be \d+ bytes/.test(e.message));
    await assert.rejects(evaluate(q, { reference: join(dir, 'kld-text.txt'), threads: 2 }), { code: 'ERR_KLD_BASE' });
  });
});
