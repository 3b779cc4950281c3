// The context settings besides the sizes, in every function and command that creates a context:
// flashAttention / -fa (llama.cpp's flash_attn_type) and cacheTypeK / cacheTypeV, -ctk / -ctv (type_k, type_v).
// Flash attention changes the arithmetic (the CPU kernel accumulates V in f16), so a perplexity equals
// llama-perplexity's only at the same -fa. The deepseek2 fixture (MLA, head sizes 576/512) is where the
// two differ most on this tree (CPU: PPL 50090 with -fa on, 50125 with -fa off).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MoeEvalError, bench, evaluate, formatBench, loadModel, sweep } from '../dist/index.js';
import { runCli } from './helpers/cli.mjs';
import { dir, fixture, sampleText } from './helpers/fixtures.mjs';
import { llamaBench, runLlamaPerplexity } from './helpers/peers.mjs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const SIZES = { contextSize: 128, batchSize: 128, chunks: 4, threads: 2 };
const PEER = ['-c', '128', '-b', '128', '--chunks', '4', '-t', '2'];
// llama-perplexity prints 4 decimals
const same = (a, b) => Math.abs(a - b) <= 0.5e-4 + 1e-6 * b;

let path;
let model;
let textFile;
before(async () => {
  path = await fixture('deepseek2');
  model = await loadModel(path);
  textFile = join(dir, 'fa-sample.txt');
  writeFileSync(textFile, sampleText());
});
after(() => model?.dispose());

describe('flashAttention', () => {
  const peer = {};
  before(async () => {
    for (const fa of ['on', 'off', 'auto']) peer[fa] = await runLlamaPerplexity(['-m', path, '-f', textFile, ...PEER, '-fa', fa]);
    assert.ok(Math.abs(peer.on.perplexity / peer.off.perplexity - 1) > 1e-4, `-fa on ${peer.on.perplexity} and off ${peer.off.perplexity} should differ on this model`);
  });

  test("evaluate() with 'on', 'off' and the default equals llama-perplexity with the same -fa", async () => {
    const text = sampleText();
    for (const fa of ['on', 'off', undefined]) {
      const r = await evaluate(model, { text, ...SIZES, ...(fa ? { flashAttention: fa } : {}) });
      const p = peer[fa ?? 'auto'];
      assert.ok(same(r.perplexity, p.perplexity), `flashAttention ${fa}: ${r.perplexity} vs llama-perplexity ${p.perplexity}`);
      assert.equal(r.flashAttention, fa ?? 'auto');
    }
  });

  test('a context keeps its setting; evaluate() refuses another one for it', async () => {
    const ctx = await model.createContext({ ...SIZES, chunks: undefined, flashAttention: 'off' });
    try {
      assert.equal(ctx.options.flashAttention, 'off');
      const r = await evaluate(ctx, { text: sampleText(), chunks: 4 });
      assert.ok(same(r.perplexity, peer.off.perplexity));
      await assert.rejects(evaluate(ctx, { text: sampleText(), chunks: 4, flashAttention: 'on' }), { name: 'TypeError', message: /flashAttention is fixed when the context is created \(off\); received on/ });
    } finally {
      await ctx.dispose();
    }
  });

  test('bad values are refused before any work, in the API and on the command line', async () => {
    await assert.rejects(model.createContext({ flashAttention: 'yes' }), {
      name: 'TypeError',
      message: "Expected one of 'auto', 'on', 'off' for createContext.flashAttention but received \"yes\"",
    });
    await assert.rejects(evaluate(model, { text: 'x', flashAttention: true }), { name: 'TypeError', message: /for evaluate\.flashAttention but received boolean true/ });
    await assert.rejects(bench(model, { flashAttention: 1 }), { name: 'TypeError', message: /for flashAttention but received number 1/ });
    const r = await runCli(['perplexity', '-m', path, '-f', textFile, '-c', '128', '-fa', 'maybe']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Expected on, off or auto for -fa \(--flash-attn\) but received "maybe"/);
  });

  test('moe-eval perplexity -fa equals llama-perplexity -fa (llama.cpp spellings: on/off/auto, 1/0/-1)', async () => {
    for (const [flag, fa] of [['off', 'off'], ['0', 'off'], ['on', 'on'], ['-1', 'auto']]) {
      const r = await runCli(['perplexity', '-m', path, '-f', textFile, ...PEER, '-fa', flag, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.ok(same(out.perplexity, peer[fa].perplexity), `-fa ${flag}: ${out.perplexity} vs llama-perplexity ${peer[fa].perplexity}`);
    }
  });

  test('sweep passes it to every point and keeps it in its resume key', async () => {
    const out = join(dir, 'fa-sweep.jsonl');
    const text = sampleText();
    const s = await sweep(model, { text, out, ...SIZES, flashAttention: 'off', routings: [{}, { experts: 1 }] });
    const direct = await evaluate(model, { text, ...SIZES, flashAttention: 'off', routing: { experts: 1 } });
    assert.ok(same(s.rows[0].perplexity, peer.off.perplexity), `${s.rows[0].perplexity} vs ${peer.off.perplexity}`);
    assert.equal(s.rows[1].perplexity, direct.perplexity);
    await assert.rejects(sweep(model, { text, out, ...SIZES, flashAttention: 'on', routings: [{}] }), { code: 'ERR_FILE', message: /results of another model, text or settings/ });
  });

  test("bench: llama-bench's flash_attn field and fa column", async () => {
    const tests = [{ nPrompt: 16, nGen: 0 }];
    const r = await bench(model, { tests, repetitions: 1, threads: 1, flashAttention: 'off' });
    const { stdout } = await promisify(execFile)(llamaBench, ['-m', path, '-p', '16', '-n', '0', '-r', '1', '-t', '1', '-ngl', '0', '-fa', '0', '-o', 'json']);
    assert.equal(r.rows[0].flash_attn, JSON.parse(stdout)[0].flash_attn);
    assert.equal(r.rows[0].flash_attn, 0);
    const { stdout: md } = await promisify(execFile)(llamaBench, ['-m', path, '-p', '16', '-n', '0', '-r', '1', '-t', '1', '-ngl', '0', '-fa', '0', '-o', 'md']);
    assert.equal(formatBench(r, 'md', { routingColumns: false }).split('\n')[0], md.split('\n')[0], 'the markdown header has llama-bench\'s fa column');
  });
});

// A quantized K cache needs head sizes its block (32) divides: the llama fixture with 2 heads of 32.
describe('cacheTypeK / cacheTypeV', () => {
  let qpath;
  let qmodel;
  const peer = {};
  before(async () => {
    qpath = await fixture('llama', { heads: 2, headsKv: 2 });
    qmodel = await loadModel(qpath);
    peer.f16 = await runLlamaPerplexity(['-m', qpath, '-f', textFile, ...PEER]);
    peer.q8 = await runLlamaPerplexity(['-m', qpath, '-f', textFile, ...PEER, '-ctk', 'q8_0', '-ctv', 'q8_0']);
    peer.k4 = await runLlamaPerplexity(['-m', qpath, '-f', textFile, ...PEER, '-ctk', 'q4_0']);
    assert.ok(Math.abs(peer.q8.perplexity / peer.f16.perplexity - 1) > 1e-6, `q8_0 ${peer.q8.perplexity} and f16 ${peer.f16.perplexity} caches should differ`);
  });
  after(() => qmodel?.dispose());

  test('evaluate() equals llama-perplexity with the same -ctk / -ctv', async () => {
    const text = sampleText();
    for (const [tag, settings] of [['f16', {}], ['q8', { cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }], ['k4', { cacheTypeK: 'q4_0' }]]) {
      const r = await evaluate(qmodel, { text, ...SIZES, ...settings });
      assert.ok(same(r.perplexity, peer[tag].perplexity), `${tag}: ${r.perplexity} vs llama-perplexity ${peer[tag].perplexity}`);
      assert.equal(r.cacheTypeK, settings.cacheTypeK ?? 'f16');
      assert.equal(r.cacheTypeV, settings.cacheTypeV ?? 'f16');
    }
  });

  test('moe-eval perplexity -ctk -ctv equals llama-perplexity; bad names are refused in the user\'s words', async () => {
    const r = await runCli(['perplexity', '-m', qpath, '-f', textFile, ...PEER, '-ctk', 'q8_0', '-ctv', 'q8_0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(same(JSON.parse(r.stdout).perplexity, peer.q8.perplexity));
    const bad = await runCli(['perplexity', '-m', qpath, '-f', textFile, '-c', '128', '-ctk', 'q9_0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Expected one of f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1 for -ctk \(--cache-type-k\) but received "q9_0"/);
    await assert.rejects(qmodel.createContext({ cacheTypeV: 'q3_k' }), { name: 'TypeError', message: /^Expected one of f32, f16, .* for createContext\.cacheTypeV but received "q3_k"$/ });
  });

  test('a quantized V cache without flash attention is refused before any work; what llama.cpp refuses comes back with its reason', async () => {
    await assert.rejects(evaluate(qmodel, { text: 'x', flashAttention: 'off', cacheTypeV: 'q8_0' }), {
      name: 'TypeError',
      message: /Expected evaluate\.flashAttention 'on' or 'auto' with a quantized evaluate\.cacheTypeV \(q8_0: .*\) but received 'off'/,
    });
    // the 4-head llama fixture's heads of 16 are not a multiple of q8_0's block of 32
    const small = await loadModel(await fixture('llama'));
    try {
      await assert.rejects(small.createContext({ cacheTypeK: 'q8_0' }), (e) => e instanceof MoeEvalError && e.code === 'ERR_CONTEXT' && /does not divide n_embd_head_k=16/.test(e.message));
    } finally {
      await small.dispose();
    }
  });

  test("bench: llama-bench's type_k / type_v fields and columns", async () => {
    const r = await bench(qmodel, { tests: [{ nPrompt: 16, nGen: 0 }], repetitions: 1, threads: 1, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' });
    const args = ['-m', qpath, '-p', '16', '-n', '0', '-r', '1', '-t', '1', '-ngl', '0', '-ctk', 'q8_0', '-ctv', 'q8_0'];
    const theirs = JSON.parse((await promisify(execFile)(llamaBench, [...args, '-o', 'json'])).stdout)[0];
    assert.equal(r.rows[0].type_k, theirs.type_k);
    assert.equal(r.rows[0].type_v, theirs.type_v);
    const md = (await promisify(execFile)(llamaBench, [...args, '-o', 'md'])).stdout;
    assert.equal(formatBench(r, 'md', { routingColumns: false }).split('\n')[0], md.split('\n')[0]);
  });
});
