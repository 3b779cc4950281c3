// flashAttention / -fa: llama.cpp's flash_attn_type in every function and command that creates a context.
// Flash attention changes the arithmetic (the CPU kernel accumulates V in f16), so a perplexity equals
// llama-perplexity's only at the same -fa. The deepseek2 fixture (MLA, head sizes 576/512) is where the
// two differ most on this tree (CPU: PPL 50090 with -fa on, 50125 with -fa off).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { bench, evaluate, formatBench, loadModel, sweep } from '../dist/index.js';
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
