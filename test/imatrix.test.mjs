// imatrix(): the importance matrix llama-imatrix computes, under any routing; its file formats; coverage.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { imatrix, imatrixCoverage, loadModel, readImatrix, writeImatrix } from '../dist/index.js';
import { dir, fixture, root } from './helpers/fixtures.mjs';
import { llamaImatrix, runPeer } from './helpers/peers.mjs';

// the calibration text as a file: llama-imatrix records the path it was given, so both get the same string
const textFile = join(root, 'vendor', 'llama.cpp', 'README.md');
const settings = { contextSize: 64, batchSize: 256, threads: 2, chunks: 6 };
const peerArgs = (model, out, extra = []) => [
  '-m', model, '-f', textFile, '-c', '64', '-b', '256', '-t', '2', '--chunks', '6', '-o', out, '--no-ppl', ...extra,
];

/** Every entry equal: names, counts exactly, values ≤ tol relative to the entry's largest value. */
function assertSameMatrix(ours, peer, tol) {
  assert.ok(peer.entries.length >= 2 * 7, `${peer.entries.length} entries`);  // 2 layers × (4 attention + router + 3 experts' tensors)
  assert.deepEqual(ours.entries.map((e) => e.name), peer.entries.map((e) => e.name));
  for (let i = 0; i < ours.entries.length; i++) {
    const a = ours.entries[i];
    const b = peer.entries[i];
    assert.deepEqual(Array.from(a.counts), Array.from(b.counts), `${a.name} counts`);
    assert.equal(a.values.length, b.values.length, `${a.name} size`);
    let max = 0;
    for (const v of b.values) max = Math.max(max, Math.abs(v));
    for (let j = 0; j < a.values.length; j++) {
      assert.ok(Math.abs(a.values[j] - b.values[j]) <= tol * max, `${a.name}[${j}]: ${a.values[j]} vs ${b.values[j]}`);
    }
  }
}

let model;
let modelPath;
before(async () => {
  modelPath = await fixture('llama');
  model = await loadModel(modelPath);
});
after(async () => {
  await model?.dispose();
});

describe('imatrix()', () => {
  test('equals llama-imatrix on the same text and settings, and writes the same GGUF file byte for byte', async () => {
    const peerFile = join(dir, 'peer.imatrix.gguf');
    await runPeer(llamaImatrix, peerArgs(modelPath, peerFile));
    const ourFile = join(dir, 'ours.imatrix.gguf');
    const r = await imatrix(model, { file: textFile, ...settings, out: ourFile });
    const peer = await readImatrix(peerFile);
    assertSameMatrix(r, peer, 1e-6);
    assert.equal(r.chunkCount, peer.chunkCount);
    assert.equal(r.chunkSize, 64);
    assert.deepEqual(r.datasets, [textFile]);
    assert.equal(r.chunks, 6);
    assert.deepEqual(readFileSync(ourFile), readFileSync(peerFile));
    // the experts' tensors carry one count per expert; dense ones one count of every token
    const up = r.entries.find((e) => e.name === 'blk.0.ffn_up_exps.weight');
    assert.equal(up.counts.length, 8);
    assert.equal(up.counts.reduce((a, c) => a + c, 0), 6 * 64 * 2);
    assert.deepEqual(Array.from(r.entries.find((e) => e.name === 'blk.0.attn_q.weight').counts), [6 * 64]);
    assert.ok(Number.isFinite(r.perplexity) && r.perplexity > 1);
  });

  test('under a routing (experts: 4) every token reaches 4 experts, as llama-imatrix with expert_used_count=4 computes', async () => {
    const peerFile = join(dir, 'peer4.imatrix.gguf');
    await runPeer(llamaImatrix, peerArgs(modelPath, peerFile, ['--override-kv', 'llama.expert_used_count=int:4']));
    const base = await imatrix(model, { file: textFile, ...settings });
    const r = await imatrix(model, { file: textFile, ...settings, routing: { experts: 4 } });
    assertSameMatrix(r, await readImatrix(peerFile), 1e-6);
    for (const name of ['blk.0.ffn_gate_exps.weight', 'blk.1.ffn_down_exps.weight']) {
      const wide = r.entries.find((e) => e.name === name).counts;
      const narrow = base.entries.find((e) => e.name === name).counts;
      assert.equal(wide.reduce((a, c) => a + c, 0), 6 * 64 * 4);
      // the top 4 include the top 2: no expert loses tokens
      for (let x = 0; x < 8; x++) assert.ok(wide[x] >= narrow[x], `${name} expert ${x}: ${wide[x]} < ${narrow[x]}`);
    }
  });

  test('computeExperts: 4 experts observed, the model\'s 2 mixed: dense inputs unchanged, every token in 4 experts\' counts', async () => {
    const base = await imatrix(model, { file: textFile, ...settings });
    const r = await imatrix(model, { file: textFile, ...settings, computeExperts: 4 });
    assert.equal(r.computedExperts, 4);
    // layer 1's attention sees the same hidden states as under the default routing
    const a = r.entries.find((e) => e.name === 'blk.1.attn_q.weight').values;
    const b = base.entries.find((e) => e.name === 'blk.1.attn_q.weight').values;
    let max = 0;
    for (const v of b) max = Math.max(max, v);
    for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) <= 1e-6 * max, `attn_q[${j}]`);
    for (const layer of [0, 1]) {
      const wide = r.entries.find((e) => e.name === `blk.${layer}.ffn_up_exps.weight`).counts;
      const narrow = base.entries.find((e) => e.name === `blk.${layer}.ffn_up_exps.weight`).counts;
      assert.equal(wide.reduce((x, c) => x + c, 0), 6 * 64 * 4);
      for (let x = 0; x < 8; x++) assert.ok(wide[x] >= narrow[x]);
    }
    await assert.rejects(imatrix(model, { file: textFile, ...settings, computeExperts: 2 }), RangeError);
  });

  test('the legacy .dat format: written as llama-imatrix writes it, read back', async () => {
    const peerDat = join(dir, 'peer.imatrix.dat');
    await runPeer(llamaImatrix, peerArgs(modelPath, peerDat, ['--output-format', 'dat']));
    const r = await imatrix(model, { file: textFile, ...settings });
    const ourDat = join(dir, 'ours.imatrix.dat');
    await writeImatrix(ourDat, r, { outputFormat: 'dat' });
    assert.deepEqual(readFileSync(ourDat), readFileSync(peerDat));
    const legacy = await readImatrix(ourDat);
    assert.equal(legacy.legacy, true);
    assert.deepEqual(legacy.datasets, [textFile]);
    assert.equal(legacy.chunkCount, r.chunkCount);
    // a dense entry: mean x² × ncall, ncall = its chunks
    const q = legacy.entries.find((e) => e.name === 'blk.0.attn_q.weight');
    const raw = r.entries.find((e) => e.name === 'blk.0.attn_q.weight');
    assert.deepEqual(Array.from(q.counts), [6]);
    assert.ok(Math.abs(q.values[0] - (raw.values[0] / raw.counts[0]) * 6) <= 1e-6 * q.values[0]);
    await assert.rejects(writeImatrix(join(dir, 'x.gguf'), legacy), RangeError);
  });

  test('coverage: tokens per layer and expert, the experts below the threshold, partial tensors', async () => {
    const r = await imatrix(model, { file: textFile, ...settings });
    const c = imatrixCoverage(r);
    assert.equal(c.threshold, 0.1);
    assert.deepEqual(c.layers.map((l) => l.layer), [0, 1]);
    for (const l of c.layers) assert.equal(l.experts.reduce((a, x) => a + x, 0), 6 * 64 * 2);
    const all = imatrixCoverage(r, { threshold: 1e9 });
    assert.equal(all.below.length, 16);
    assert.ok(all.below.every((b, i) => i === 0 || all.below[i - 1].tokens <= b.tokens));
    const none = imatrixCoverage(r, { threshold: 0 });
    assert.equal(none.below.length, 0);
    for (const b of c.below) assert.ok(b.share < 0.1 && b.tokens === c.layers.find((l) => l.layer === b.layer).experts[b.expert]);
    const zeroExperts = c.layers.some((l) => l.experts.includes(0));
    assert.equal(c.partial.length > 0, zeroExperts);
    // all 8 experts per token: every expert sees every token, nothing below any share ≤ 1
    const full = imatrixCoverage(await imatrix(model, { file: textFile, ...settings, routing: { experts: 8 } }), { threshold: 1 });
    assert.equal(full.below.length, 0);
    assert.equal(full.partial.length, 0);
  });

  test('options are checked before any work', async () => {
    await assert.rejects(imatrix(model, { file: textFile, contextSize: 64, outputFormat: 'bin' }), RangeError);
    await assert.rejects(imatrix(model, { file: textFile, contextSiz: 64 }), /contextSize/);
    await assert.rejects(imatrix(model, { text: 'too short', contextSize: 64 }), (e) => e.code === 'ERR_TEXT_TOO_SHORT');
    assert.throws(() => imatrixCoverage({ entries: [] }, { threshold: -1 }), RangeError);
  });
});

describe('imatrix files', () => {
  test('hostile or foreign files are refused with coded errors, not crashes', async () => {
    const { writeFileSync } = await import('node:fs');
    const cases = {
      'empty.dat': Buffer.alloc(0),
      'zero-entries.dat': Buffer.from([0, 0, 0, 0]),
      // one entry, name 'a', ncall 1, nval 2^30 (far beyond the file)
      'huge.dat': Buffer.concat([Int32Array.of(1, 1).buffer, Buffer.from('a'), Int32Array.of(1, 1 << 30).buffer].map((b) => Buffer.from(b))),
      'text.dat': Buffer.from('not an imatrix at all, just some text of some length'),
    };
    for (const [name, data] of Object.entries(cases)) {
      const path = join(dir, name);
      writeFileSync(path, data);
      await assert.rejects(readImatrix(path), (e) => e.code === 'ERR_GGUF', name);
    }
    await assert.rejects(readImatrix(join(dir, 'missing.gguf')), (e) => e.code === 'ERR_FILE');
    // a model is a GGUF without imatrix tensors
    await assert.rejects(readImatrix(await fixture('llama')), (e) => e.code === 'ERR_GGUF');
  });
});
