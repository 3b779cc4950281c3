// sweep({ strategy: 'halving' }) and what it stands on: an evaluation in pieces (evaluate's firstChunk)
// adds up to the evaluation done whole and to llama-perplexity on the same chunks; halving finds the full
// grid's best point on fewer tokens; a killed halving sweep resumes to the same result.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { combineChunks, evaluate, loadModel, sweep } from '../dist/index.js';
import { studentTCritical } from '../dist/student-t.js';
import { dir, fixture, root, sampleText } from './helpers/fixtures.mjs';
import { runLlamaPerplexity } from './helpers/peers.mjs';

const demoModel = join(root, 'models', 'demo', 'moe-demo.gguf');
const demoText = join(root, 'models', 'demo', 'heldout.txt');
const close = (a, b, rel = 1e-12) => Math.abs(a - b) <= rel * Math.abs(b);
// the points of a results file (its first line is the header); pieces are lines with `piece`
const lines = (path) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.format !== 'moe-eval-results');

describe('evaluation in pieces', () => {
  let model;
  let textFile;
  before(async () => {
    model = await loadModel(await fixture('llama'));
    textFile = join(dir, 'halving-sample.txt');
    writeFileSync(textFile, sampleText());
  });
  after(() => model.dispose());

  for (const [c, b] of [[64, 256], [64, 64]]) {
    test(`chunks [0,2) + [2,3) + [3,6) add up to [0,6) and to llama-perplexity --chunks 6 (-c ${c} -b ${b})`, async () => {
      const o = { file: textFile, contextSize: c, batchSize: b, threads: 2, routing: { experts: 3 } };
      const whole = await evaluate(model, { ...o, chunks: 6 });
      const pieces = [
        await evaluate(model, { ...o, chunks: 2 }),
        await evaluate(model, { ...o, firstChunk: 2, chunks: 1 }),
        await evaluate(model, { ...o, firstChunk: 3, chunks: 3 }),
      ];
      const chunks = pieces.flatMap((p) => p.chunks);
      assert.deepEqual(chunks.map((x) => x.index), [0, 1, 2, 3, 4, 5]);
      // every chunk's sums are the same bits, whatever piece (and batch grouping) it was decoded in
      assert.deepEqual(chunks, whole.chunks);
      const total = combineChunks(chunks);
      assert.ok(close(total.perplexity, whole.perplexity) && close(total.stderr, whole.stderr) && close(total.nll, whole.nll), `${total.perplexity} ± ${total.stderr} vs ${whole.perplexity} ± ${whole.stderr}`);
      assert.equal(total.count, whole.scoredTokens);
      const peer = await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', String(c), '-b', String(b), '--chunks', '6', '-t', '2', '--override-kv', 'llama.expert_used_count=int:3']);
      assert.ok(Math.abs(total.perplexity - peer.perplexity) <= 0.5e-4 + 1e-6 * peer.perplexity, `pieces ${total.perplexity} vs llama-perplexity ${peer.perplexity}`);
      assert.ok(Math.abs(total.stderr - peer.stderr) <= 0.5e-5 + 1e-6 * peer.stderr, `± ${total.stderr} vs ${peer.stderr}`);
      // llama-perplexity's running value after chunk k is the pieces' chunks [0, k] combined
      assert.equal(peer.running.length, 6);
      for (let k = 0; k < 6; k++) {
        const upTo = combineChunks(chunks.slice(0, k + 1)).perplexity;
        assert.ok(Math.abs(upTo - peer.running[k]) <= 0.5e-4 + 1e-6 * upTo, `[${k + 1}] ${upTo} vs ${peer.running[k]}`);
      }
    });
  }

  for (const kldTopK of [undefined, 16]) {
    test(`KL-divergence pieces against a ${kldTopK ? 'compact' : "llama.cpp's"} base file add up to the whole`, async () => {
      const base = join(dir, `halving-base-${kldTopK ?? 'full'}.kld`);
      await evaluate(model, { file: textFile, contextSize: 64, batchSize: 256, chunks: 6, threads: 2, saveReference: base, ...(kldTopK ? { kldTopK } : {}) });
      const o = { reference: base, batchSize: 256, threads: 2, routing: { experts: 1 } };
      const whole = await evaluate(model, o);
      const pieces = [await evaluate(model, { ...o, chunks: 4 }), await evaluate(model, { ...o, firstChunk: 4 })];
      const chunks = pieces.flatMap((p) => p.chunks);
      assert.deepEqual(chunks, whole.chunks);
      const total = combineChunks(chunks);
      assert.ok(close(total.kldMean, whole.kld.kldMean) && close(total.kldUnc, whole.kld.kldUnc) && close(total.sameTop, whole.kld.sameTop), `${total.kldMean} ± ${total.kldUnc} vs ${whole.kld.kldMean} ± ${whole.kld.kldUnc}`);
      assert.ok(close(total.perplexity, whole.perplexity));
      assert.ok(whole.chunks.every((c) => c.kld.mean > 0));
    });
  }

  test('firstChunk is checked', async () => {
    await assert.rejects(evaluate(model, { file: textFile, contextSize: 64, firstChunk: 10_000 }), (e) => e instanceof RangeError && /firstChunk/.test(e.message));
    await assert.rejects(evaluate(model, { file: textFile, contextSize: 64, firstChunk: -1 }), RangeError);
    await assert.rejects(evaluate(model, { file: textFile, contextSize: 64, firstChunk: 1, saveReference: join(dir, 'x.kld') }), TypeError);
  });
});

describe("sweep({ strategy: 'halving' })", () => {
  test("Student's t critical values (published tables)", () => {
    for (const [alpha, df, t] of [[0.025, 1, 12.7062], [0.05, 10, 1.8125], [0.005, 3, 5.8409], [0.001, 30, 3.3852], [0.025, 1000, 1.9623]]) {
      assert.ok(Math.abs(studentTCritical(alpha, df) - t) < 1e-4, `t(${alpha}, ${df}) = ${studentTCritical(alpha, df)}, table ${t}`);
    }
  });

  // the demo model (trained): scaling the experts' output far from 1 is clearly worse than the model's own routing
  const grid = { expertScale: [0.1, 0.3, 1, 3, 10] };
  const common = { grid, file: demoText, contextSize: 64, batchSize: 256, chunks: 32, threads: 2 };

  test('finds the full grid best point on fewer tokens; survivors have the full grid numbers', async () => {
    const model = await loadModel(demoModel);
    try {
      const outGrid = join(dir, 'halving-grid.jsonl');
      const outH = join(dir, 'halving.jsonl');
      for (const f of [outGrid, outH]) rmSync(f, { force: true });
      const full = await sweep(model, { ...common, out: outGrid });
      const progress = [];
      const h = await sweep(model, { ...common, out: outH, strategy: 'halving', initialChunks: 4, onProgress: (p) => progress.push(p) });
      const bestGrid = full.rows.reduce((b, r) => (r.nll < b.nll ? r : b));
      const bestH = h.rows.filter((r) => r.best);
      assert.equal(bestH.length, 1);
      assert.equal(bestH[0].key, bestGrid.key);
      assert.equal(bestGrid.routing, 'default');
      assert.equal(h.strategy, 'halving');
      assert.equal(full.tokensEvaluated, 5 * 32 * 64);
      assert.equal(h.halving.tokensFullGrid, full.tokensEvaluated);
      assert.ok(h.tokensEvaluated < full.tokensEvaluated, `${h.tokensEvaluated} tokens vs the grid's ${full.tokensEvaluated}`);
      assert.equal(h.tokensEvaluated, h.rows.reduce((n, r) => n + r.chunks * 64, 0));
      const byKey = new Map(full.rows.map((r) => [r.key, r]));
      for (const r of h.rows) {
        const g = byKey.get(r.key);
        if (r.dropped) {
          assert.ok(r.chunks < 32 && r.dropped.t > r.dropped.critical && r.dropped.meanDifference > 0);
          assert.equal(r.dropped.chunks, r.chunks);
          assert.equal(r.dropped.df, r.chunks - 1);
        } else if (r.chunks === 32) {
          assert.ok(close(r.perplexity, g.perplexity) && close(r.stderr, g.stderr), `${r.routing}: ${r.perplexity} vs ${g.perplexity}`);
        }
      }
      assert.ok(h.rows.some((r) => r.dropped), 'the clearly worse points are dropped');
      // the extreme scales are dropped in the first rounds
      for (const s of [0.1, 10]) assert.ok(h.rows.find((r) => r.point.expertScale === s).chunks <= 8, `expert scale ${s}: ${h.rows.find((r) => r.point.expertScale === s).chunks} chunks`);
      // rounds double the chunks
      assert.deepEqual(h.halving.rounds.map((r) => r.chunks), [4, 8, 16, 32].slice(0, h.halving.rounds.length));
      assert.ok(progress.length > 0 && progress.every((p) => p.round >= 1 && p.round <= p.rounds && p.toChunk > p.fromChunk));
      // the results file: one line per piece, one row per point
      const l = lines(outH);
      assert.equal(l.filter((x) => !x.piece).length, 5);
      assert.equal(new Set(l.map((x) => x.key)).size, l.length);
    } finally {
      await model.dispose();
    }
  });

  test('a killed halving sweep resumes to the same result', async () => {
    const script = `
      import { sweep } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
      const [out] = process.argv.slice(1);
      const r = await sweep(${JSON.stringify(demoModel)}, { ...${JSON.stringify(common)}, out, strategy: 'halving', initialChunks: 4,
        onProgress: (p) => { if (p.chunksDone === p.chunksTotal) console.log('piece'); } });
      console.log(JSON.stringify({ rows: r.rows, resumed: r.resumed, tokens: r.tokensEvaluated }));
    `;
    const run = (out, killAfter) =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, out], { stdio: ['ignore', 'pipe', 'pipe'] });
        let seen = 0;
        let stdout = '';
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.stdout.on('data', (d) => {
          stdout += d;
          seen += String(d).split('\n').filter((x) => x === 'piece').length;
          if (killAfter && seen >= killAfter) child.kill('SIGKILL');
        });
        child.on('exit', (code, sig) => (code === 0 || sig === 'SIGKILL' ? resolve({ code, sig, result: code === 0 ? JSON.parse(stdout.trim().split('\n').pop()) : undefined }) : reject(new Error(`exited ${code}: ${stderr}`))));
      });
    const whole = join(dir, 'halving-whole.jsonl');
    const cut = join(dir, 'halving-cut.jsonl');
    for (const f of [whole, cut]) rmSync(f, { force: true });
    const reference = (await run(whole)).result;
    const killed = await run(cut, 14); // each piece reports its end twice (its last chunk, then stored)
    assert.equal(killed.sig, 'SIGKILL');
    const before = lines(cut).length;
    assert.ok(before >= 6, `${before} lines before the kill`);
    appendFileSync(cut, '{"key":"torn'); // a line torn mid-write
    const resumed = (await run(cut)).result;
    const l = lines(cut);
    assert.equal(new Set(l.map((x) => x.key)).size, l.length, 'no piece or row twice');
    assert.deepEqual(lines(cut).map((x) => x.key).sort(), lines(whole).map((x) => x.key).sort());
    const strip = (r) => ({ ...r, elapsedMs: 0, tokensPerSecond: 0 });
    assert.deepEqual(resumed.rows.map(strip), reference.rows.map(strip));
    assert.equal(resumed.tokens, reference.tokens);
    // a rerun of a finished search evaluates nothing
    const again = (await run(cut)).result;
    assert.equal(again.resumed, 5);
  });

  test('options are checked before anything is loaded', async () => {
    const o = { grid: { experts: [1, 2] }, text: 'x', out: join(dir, 'never.jsonl') };
    await assert.rejects(sweep('/nonexistent.gguf', { ...o, strategy: 'halvng' }), (e) => e instanceof TypeError && /Expected 'grid' or 'halving' for strategy.*Did you mean 'halving'/.test(e.message));
    await assert.rejects(sweep('/nonexistent.gguf', { ...o, initialChunks: 4 }), (e) => e instanceof TypeError && /initialChunks is an option of strategy 'halving'/.test(e.message));
    await assert.rejects(sweep('/nonexistent.gguf', { ...o, alpha: 0.1 }), TypeError);
    await assert.rejects(sweep('/nonexistent.gguf', { ...o, strategy: 'halving', alpha: 0.7 }), RangeError);
    await assert.rejects(sweep('/nonexistent.gguf', { ...o, strategy: 'halving', initialChunks: 1 }), RangeError);
    await assert.rejects(sweep('/nonexistent.gguf', { ...o, strategy: 'halving', accuracy: { task: 'winogrande', file: 'w.csv' } }), (e) => e instanceof TypeError && /accuracy/.test(e.message));
  });
});
