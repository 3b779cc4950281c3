// The public API's contracts: typed errors before native work, dispose, abort, queuing.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DisposedError, MoeEvalError, evaluate, loadModel, resolveRouting } from '../dist/index.js';
import { dir, fixture, sampleText } from './helpers/fixtures.mjs';

let model;
before(async () => {
  model = await loadModel(await fixture('llama'));
});
after(() => model.dispose());

describe('loadModel errors', () => {
  test('missing file, directory, empty file, not a GGUF', async () => {
    await assert.rejects(loadModel(join(dir, 'nope.gguf')), { code: 'ERR_FILE', message: /not found/ });
    mkdirSync(join(dir, 'a-dir'), { recursive: true });
    await assert.rejects(loadModel(join(dir, 'a-dir')), { code: 'ERR_FILE', message: /directory/ });
    writeFileSync(join(dir, 'empty.gguf'), '');
    await assert.rejects(loadModel(join(dir, 'empty.gguf')), { code: 'ERR_GGUF' });
    writeFileSync(join(dir, 'text.gguf'), 'hello world');
    await assert.rejects(loadModel(join(dir, 'text.gguf')), { code: 'ERR_GGUF', message: /magic "GGUF"/ });
  });

  test('a truncated GGUF is a rejected promise, not a crash', async () => {
    const { readFileSync } = await import('node:fs');
    const full = readFileSync(model.path);
    const cut = join(dir, 'cut.gguf');
    writeFileSync(cut, full.subarray(0, Math.floor(full.length / 3)));
    await assert.rejects(loadModel(cut), (e) => e instanceof MoeEvalError && e.code === 'ERR_MODEL_LOAD');
  });

  test('bad options are TypeError/RangeError with a hint', async () => {
    await assert.rejects(loadModel(model.path, { gpuLayer: 1 }), { name: 'TypeError', message: /Unknown option 'gpuLayer'.*Did you mean 'gpuLayers'/ });
    await assert.rejects(loadModel(model.path, { gpuLayers: 1.5 }), { name: 'TypeError', message: /Expected an integer .* for gpuLayers but received number 1.5/ });
    await assert.rejects(loadModel(''), TypeError);
    await assert.rejects(loadModel(model.path, { kvOverrides: ['llama.expert_used_count=int:x'] }), TypeError);
  });

  test('kvOverrides change the loaded model (llama.cpp --override-kv syntax)', async () => {
    const m = await loadModel(model.path, { kvOverrides: ['llama.expert_used_count=int:3'] });
    assert.equal(m.info.expertsUsed, 3);
    await m.dispose();
  });
});

describe('Model.info', () => {
  test('reports routing facts', () => {
    const i = model.info;
    assert.equal(i.architecture, 'llama');
    assert.equal(i.expertCount, 8);
    assert.equal(i.expertsUsed, 2);
    assert.equal(i.gating, 'softmax');
    assert.equal(i.renormalized, true);
    assert.equal(i.sharedExperts, 0);
    assert.equal(i.layers, 2);
    assert.deepEqual(i.moeLayers.map((l) => l.layer), [0, 1]);
    assert.equal(i.fileType.startsWith('F32'), true);
    assert.ok(Math.abs(i.bitsPerWeight - 32) < 0.5);
  });
});

describe('routing validation', () => {
  const info = () => model.info;
  test('rejects out-of-range and malformed values, naming the option', () => {
    assert.throws(() => resolveRouting({ experts: 0 }, info()), { name: 'RangeError', message: /integer in \[1, 8\].*routing.experts but received number 0/ });
    assert.throws(() => resolveRouting({ experts: 9 }, info()), RangeError);
    assert.throws(() => resolveRouting({ experts: 2.5 }, info()), TypeError);
    assert.throws(() => resolveRouting({ experts: [1, 2, 3] }, info()), { name: 'RangeError', message: /2 values \(one per layer\)/ });
    assert.throws(() => resolveRouting({ expertScale: NaN }, info()), TypeError);
    assert.throws(() => resolveRouting({ expertScale: -1 }, info()), RangeError);
    assert.throws(() => resolveRouting({ gateScale: Infinity }, info()), RangeError);
    assert.throws(() => resolveRouting({ expertScale: 'sqrt' }, info()), /seed-uniform/);
    assert.throws(() => resolveRouting({ minWeightRatio: 2 }, info()), RangeError);
    assert.throws(() => resolveRouting({ expert: 2 }, info()), { name: 'TypeError', message: /Did you mean 'experts'/ });
  });
  test('the text grammar of the CLI flags gives the same routing as the typed form', () => {
    const same = (a, b) => assert.deepEqual({ ...resolveRouting(a, info()) }, { ...resolveRouting(b, info()) });
    same({ experts: '3' }, { experts: 3 });
    same({ experts: '3,1' }, { experts: [3, 1] });
    same({ experts: '1:3' }, { experts: [2, 3] });
    same({ experts: '0-1:4' }, { experts: 4 });
    same({ expertScale: '0:1.5' }, { expertScale: [1.5, 1] });
    same({ gateScale: '0.5,2' }, { gateScale: [0.5, 2] });
    same({ maskExperts: '3,5' }, { maskExperts: [5, 3] });
    same({ maskExperts: '1:2' }, { maskExperts: [[], [2]] });
    same({ maskExperts: 'none' }, {});
    // the label is written in the same grammar, and reads back as the same routing
    const r = resolveRouting({ experts: '1:3', expertScale: 'uniform', maskExperts: '0:1,2;1:7', gateScale: 2 }, info());
    assert.equal(r.label, 'experts=0:2;1:3 expert-scale=uniform gate-scale=2 mask-experts=0:1,2;1:7');
    const option = { experts: 'experts', 'expert-scale': 'expertScale', 'gate-scale': 'gateScale', 'mask-experts': 'maskExperts' };
    const back = Object.fromEntries(r.label.split(' ').map((kv) => kv.split('=')).map(([k, v]) => [option[k], v]));
    assert.deepEqual(resolveRouting(back, info()), r);
  });
  test('the text grammar is checked as strictly as the typed form', () => {
    assert.throws(() => resolveRouting({ experts: '3,x' }, info()), { name: 'TypeError', message: /routing.experts\[1\]/ });
    assert.throws(() => resolveRouting({ experts: '5:3' }, info()), { name: 'RangeError', message: /layers in \[0, 1\]/ });
    assert.throws(() => resolveRouting({ experts: '0:3;0-1:2' }, info()), { name: 'RangeError', message: /named twice/ });
    assert.throws(() => resolveRouting({ maskExperts: '8' }, info()), { name: 'RangeError', message: /expert id in \[0, 7\]/ });
    assert.throws(() => resolveRouting({ maskExperts: '1,1' }, info()), { name: 'RangeError', message: /twice/ });
    assert.throws(() => resolveRouting({ maskExperts: '0,1,2,3,4,5,6', experts: 2 }, info()), { name: 'RangeError', message: /leaves 1 experts in layer 0/ });
    assert.throws(() => resolveRouting({ topP: 0 }, info()), RangeError);
    // -ser that drops nothing, a profile that is never used: refused, not ignored
    assert.throws(() => resolveRouting({ minWeightRatio: 0.3, minExperts: 2 }, info()), { name: 'RangeError', message: /below the experts per token \(2\)/ });
    assert.throws(() => resolveRouting({ experts: 3, profile: {} }, info()), { name: 'TypeError', message: /only used with routing.expertScale 'calibrated'/ });
  });
  test('named scale rules follow the model (renormalized → sqrt(m/n))', () => {
    const r = resolveRouting({ experts: 3, expertScale: 'uniform' }, info());
    assert.ok(Math.abs(r.expertScale[0] - Math.sqrt(3 / 2)) < 1e-12);
    const s = resolveRouting({ experts: 3, expertScale: 'seed-uniform' }, info());
    assert.ok(Math.abs(s.expertScale[0] - Math.sqrt(2 / 3)) < 1e-12);
    assert.equal(s.label, 'experts=3 expert-scale=seed-uniform');
  });
});

describe('abort, dispose, queue', () => {
  test('an already-aborted signal rejects with its reason and starts nothing', async () => {
    const reason = new Error('stop');
    await assert.rejects(evaluate(model, { text: sampleText(), contextSize: 64, threads: 2, signal: AbortSignal.abort(reason) }), (e) => e === reason);
  });

  test('abort mid-run settles, and the context gives the same numbers afterwards', async () => {
    const ctx = await model.createContext({ contextSize: 64, batchSize: 64, threads: 2 });
    const text = sampleText().repeat(3);
    const full = await evaluate(ctx, { text, chunks: 12 });
    const ac = new AbortController();
    const p = evaluate(ctx, { text, onProgress: (pr) => pr.chunksDone === 2 && ac.abort(new Error('enough')), signal: ac.signal });
    await assert.rejects(p, { message: 'enough' });
    const again = await evaluate(ctx, { text, chunks: 12 });
    assert.equal(again.perplexity, full.perplexity);
    await ctx.dispose();
  });

  test('two evaluations on one context are queued, not interleaved', async () => {
    const ctx = await model.createContext({ contextSize: 64, batchSize: 128, threads: 2 });
    const text = sampleText();
    const [a, b] = await Promise.all([evaluate(ctx, { text, chunks: 4 }), evaluate(ctx, { text, chunks: 4, routing: { experts: 1 } })]);
    const a2 = await evaluate(ctx, { text, chunks: 4, routing: {} });
    assert.equal(a.perplexity, a2.perplexity);
    assert.deepEqual(b.routing.experts, [1, 1]);
    await ctx.dispose();
  });

  test('parallel contexts of one model give the sequential numbers', async () => {
    const c1 = await model.createContext({ contextSize: 64, batchSize: 128, threads: 1 });
    const c2 = await model.createContext({ contextSize: 64, batchSize: 128, threads: 1, routing: { experts: 3 } });
    const text = sampleText();
    const [p1, p2] = await Promise.all([evaluate(c1, { text, chunks: 4 }), evaluate(c2, { text, chunks: 4 })]);
    assert.equal((await evaluate(c1, { text, chunks: 4 })).perplexity, p1.perplexity);
    assert.equal((await evaluate(c2, { text, chunks: 4 })).perplexity, p2.perplexity);
    await Promise.all([c1.dispose(), c2.dispose()]);
  });

  test('dispose is idempotent, waits for a running evaluation, and later calls throw DisposedError', async () => {
    const m = await loadModel(model.path);
    const ctx = await m.createContext({ contextSize: 64, batchSize: 64, threads: 2 });
    const running = evaluate(ctx, { text: sampleText().repeat(3) });
    const d1 = ctx.dispose();
    const d2 = ctx.dispose();
    assert.equal(d1, d2);
    await assert.rejects(running, (e) => e instanceof DisposedError || e.code === 'ABORT_ERR');
    await d1;
    assert.throws(() => ctx.setRouting({}), DisposedError);
    await assert.rejects(evaluate(ctx, { text: sampleText() }), DisposedError);
    await m.dispose();
    await m.dispose();
    assert.throws(() => m.info, DisposedError);
    await assert.rejects(m.tokenize('x'), DisposedError);
  });

  test('Symbol.asyncDispose', async () => {
    // Node 20 has no `await using`; call the disposer as the syntax would (Symbol.asyncDispose exists since Node 20.4)
    const m = await loadModel(model.path);
    assert.equal(typeof m[Symbol.asyncDispose], 'function');
    await m[Symbol.asyncDispose]();
    assert.equal(m.disposed, true);
  });
});

describe('graph capacity', () => {
  test('an expert count whose graph would overflow llama.cpp\'s is refused; the largest that fits runs', async () => {
    const path = await fixture('llama', { layers: 4, expertCount: 160, expertsUsed: 2, feedForwardLength: 16, embeddingLength: 64 });
    const m = await loadModel(path);
    let err;
    try {
      resolveRouting({ experts: 160 }, m.info);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof RangeError, 'experts=160 should not fit');
    const max = Number(/at most (\d+) experts/.exec(err.message)[1]);
    assert.ok(max >= 2 && max < 160, err.message);
    const r = await evaluate(m, { text: sampleText(), contextSize: 64, batchSize: 64, threads: 2, chunks: 1, routing: { experts: max } });
    assert.ok(r.perplexity > 1);
    await m.dispose();
  });
});

describe('compute buffers', () => {
  test('raising the expert count beyond what a context reserved works and gives the same numbers', async () => {
    const small = await model.createContext({ contextSize: 64, batchSize: 128, threads: 2 });
    const big = await model.createContext({ contextSize: 64, batchSize: 128, threads: 2, routing: { experts: 8 } });
    const text = sampleText();
    const a = await evaluate(small, { text, chunks: 4, routing: { experts: 8 } });
    const b = await evaluate(big, { text, chunks: 4 });
    assert.equal(a.perplexity, b.perplexity);
    await Promise.all([small.dispose(), big.dispose()]);
  });
});

describe('Context.memory()', () => {
  test("llama.cpp's accounting: KV grows with the context, compute with the batch, weights shared", async () => {
    // llama.cpp pads the KV cache to a multiple of 256 cells
    const a = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2 });
    const b = await model.createContext({ contextSize: 1024, batchSize: 256, threads: 2 });
    const c = await model.createContext({ contextSize: 256, batchSize: 64, threads: 2 });
    const [ma, mb, mc] = [await a.memory(), await b.memory(), await c.memory()];
    assert.ok(ma.context > 0 && ma.compute > 0 && ma.model > 0);
    assert.equal(mb.context, 4 * ma.context); // the KV cache is linear in its size
    assert.ok(mc.compute < ma.compute, `${mc.compute} < ${ma.compute}`); // one ubatch of 64 tokens, not 256
    assert.equal(ma.model, mb.model); // the same mapped weights, counted for each context that uses them
    assert.ok(ma.buffers.some((x) => x.bufferType.startsWith('CPU')));
    assert.equal(ma.buffers.reduce((s, x) => s + x.compute, 0), ma.compute);
    await Promise.all([a.dispose(), b.dispose(), c.dispose()]);
    await assert.rejects(a.memory(), DisposedError);
  });
});
