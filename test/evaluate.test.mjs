// evaluate(): perplexity by llama-perplexity's method and numbers.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MoeEvalError, evaluate, loadModel } from '../dist/index.js';
import { dir, fixture, rowNll, sampleText } from './helpers/fixtures.mjs';
import { runLlamaPerplexity } from './helpers/peers.mjs';

let model;
let textFile;
before(async () => {
  model = await loadModel(await fixture('llama'));
  textFile = join(dir, 'sample.txt');
  writeFileSync(textFile, sampleText());
});
after(() => model.dispose());

/** Reference perplexity from raw logits, computed here in double precision. */
async function referencePerplexity(tokens, contextSize, chunks) {
  const ctx = await model.createContext({ contextSize, batchSize: contextSize, threads: 2 });
  const V = model.info.vocabSize;
  const first = contextSize / 2;
  let nll = 0;
  let count = 0;
  for (let c = 0; c < chunks; c++) {
    const chunk = tokens.slice(c * contextSize, (c + 1) * contextSize);
    const input = Int32Array.from(chunk);
    input[0] = 1; // BOS replaces each chunk's first token
    const logits = await ctx.logits(input);
    for (let j = first; j < contextSize - 1; j++) {
      const row = logits.subarray(j * V, (j + 1) * V);
      nll += rowNll(row, chunk[j + 1]);
      count++;
    }
  }
  await ctx.dispose();
  return { perplexity: Math.exp(nll / count), count };
}

describe('evaluate()', () => {
  test('equals a perplexity computed from raw logits', async () => {
    const tokens = await model.tokenize(sampleText());
    const r = await evaluate(model, { tokens, contextSize: 128, batchSize: 512, chunks: 6, threads: 2 });
    const ref = await referencePerplexity(tokens, 128, 6);
    assert.equal(r.scoredTokens, ref.count);
    assert.ok(Math.abs(r.perplexity / ref.perplexity - 1) < 1e-6, `${r.perplexity} vs reference ${ref.perplexity}`);
  });

  for (const [c, b] of [[128, 512], [128, 128], [256, 64]]) {
    test(`equals llama-perplexity (-c ${c} -b ${b}, ${b > c ? 'several chunks per batch' : b < c ? 'several batches per chunk' : 'one chunk per batch'})`, async () => {
      const chunks = 6;
      const r = await evaluate(model, { file: textFile, contextSize: c, batchSize: b, chunks, threads: 2 });
      const peer = await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', String(c), '-b', String(b), '--chunks', String(chunks), '-t', '2']);
      // llama-perplexity prints 4 decimals
      assert.ok(Math.abs(r.perplexity - peer.perplexity) <= 0.5e-4 + 1e-6 * peer.perplexity, `moe-eval ${r.perplexity} vs llama-perplexity ${peer.perplexity}`);
      assert.ok(Math.abs(r.stderr - peer.stderr) <= 0.5e-5 + 1e-6 * peer.stderr, `± ${r.stderr} vs ${peer.stderr}`);
      assert.equal(r.chunks.length, chunks);
    });
  }

  test('result shape, chunks and progress', async () => {
    const progress = [];
    const r = await evaluate(model, { text: sampleText(), contextSize: 64, batchSize: 128, chunks: 4, threads: 2, onProgress: (p) => progress.push(p) });
    assert.equal(r.contextSize, 64);
    assert.equal(r.scoredTokens, 4 * (64 - 32 - 1));
    assert.equal(r.chunks.length, 4);
    assert.deepEqual(r.chunks.map((c) => c.index), [0, 1, 2, 3]);
    const meanNll = r.chunks.reduce((a, c) => a + c.nll, 0) / 4;
    assert.ok(Math.abs(meanNll - r.nll) < 1e-9);
    assert.ok(r.tokensPerSecond > 0 && r.elapsedMs > 0);
    assert.ok(r.scoringMs > 0 && r.scoringMs < r.elapsedMs, `scoring ${r.scoringMs} ms of ${r.elapsedMs} ms`);
    assert.equal(r.routing.label, 'default');
    assert.equal(r.model.architecture, 'llama');
    // two chunks per batch → progress after chunks 2 and 4
    assert.deepEqual(progress.map((p) => p.chunksDone), [2, 4]);
    assert.ok(Math.abs(progress.at(-1).perplexity - r.perplexity) < 1e-9 * r.perplexity);
  });

  test('text too short for the context gives both numbers', async () => {
    await assert.rejects(evaluate(model, { text: 'In the beginning', contextSize: 128, threads: 2 }), (e) => {
      assert.ok(e instanceof MoeEvalError);
      assert.equal(e.code, 'ERR_TEXT_TOO_SHORT');
      assert.match(e.message, /at least 256 tokens.*only \d+/);
      return true;
    });
  });

  test('a context evaluates again with the same numbers, and under a new routing without reload', async () => {
    const ctx = await model.createContext({ contextSize: 128, batchSize: 256, threads: 2 });
    const a = await evaluate(ctx, { file: textFile, chunks: 4 });
    const b = await evaluate(ctx, { file: textFile, chunks: 4, routing: { experts: 1 } });
    const c = await evaluate(ctx, { file: textFile, chunks: 4, routing: {} });
    assert.notEqual(a.perplexity, b.perplexity);
    assert.equal(a.perplexity, c.perplexity);
    assert.deepEqual(b.routing.experts, [1, 1]);
    await ctx.dispose();
  });

  test("a routing given to one evaluation applies to it alone; the context's own routing is set at creation or with setRouting()", async () => {
    const ctx = await model.createContext({ contextSize: 128, batchSize: 256, threads: 2, routing: { experts: 3 } });
    const own = await evaluate(ctx, { file: textFile, chunks: 2 });
    const once = await evaluate(ctx, { file: textFile, chunks: 2, routing: { experts: 1 } });
    const after = await evaluate(ctx, { file: textFile, chunks: 2 });
    assert.equal(own.routing.label, 'experts=3');
    assert.equal(once.routing.label, 'experts=1');
    assert.equal(after.routing.label, 'experts=3');
    assert.equal(after.perplexity, own.perplexity);
    ctx.setRouting({});
    const reset = await evaluate(ctx, { file: textFile, chunks: 2 });
    assert.equal(reset.routing.label, 'default');
    assert.notEqual(reset.perplexity, own.perplexity);
    await ctx.dispose();
  });
});
