// quantizeModel(): llama-quantize's parameters, and its output byte for byte.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { imatrix, loadModel, quantizeModel } from '../dist/index.js';
import { dir, fixture, root } from './helpers/fixtures.mjs';
import { layout } from './helpers/gguf-fuzz.mjs';
import { llamaImatrix, llamaQuantize, runPeer } from './helpers/peers.mjs';

/** A GGUF's metadata keys and tensor types (ggml type ids) by name. */
function contents(path) {
  const buf = readFileSync(path);
  const l = layout(buf);
  const str = (at) => buf.toString('utf8', at + 8, at + 8 + Number(buf.readBigUInt64LE(at)));
  return {
    keys: l.kvs.map((kv) => str(kv.keyAt)),
    types: Object.fromEntries(l.tensors.map((t) => [str(t.nameAt), buf.readUInt32LE(t.typeAt)])),
  };
}
const F32 = 0, Q4_0 = 2, Q8_0 = 8, Q2_K = 10, Q4_K = 12, Q6_K = 14, IQ2_XXS = 16, IQ3_S = 21;

const sha = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');
const textFile = join(root, 'vendor', 'llama.cpp', 'README.md');

// k-quants and IQ types need rows that are multiples of 256
const SPEC = { embeddingLength: 256, feedForwardLength: 256, heads: 4, headsKv: 2 };
let src;
let peerImatrix;

before(async () => {
  src = await fixture('llama', SPEC);
  peerImatrix = join(dir, 'q.imatrix.gguf');
  await runPeer(llamaImatrix, ['-m', src, '-f', textFile, '-c', '64', '-b', '256', '-t', '2', '--chunks', '4', '-o', peerImatrix, '--no-ppl']);
});

let n = 0;
/** Quantizes with both tools; returns [ours, peer] paths. */
async function both(type, options = {}, flags = []) {
  const id = n++;
  const ours = join(dir, `ours-${id}.gguf`);
  const peer = join(dir, `peer-${id}.gguf`);
  await quantizeModel(src, ours, { type, threads: 2, ...options });
  await runPeer(llamaQuantize, [...flags, src, peer, type, '2']);
  return [ours, peer];
}

describe('quantizeModel() equals llama-quantize byte for byte', () => {
  const cases = [
    ['q4_k_m', {}, [], {}],
    ['q2_k --pure', { pure: true }, ['--pure'], { 'blk.0.attn_q.weight': Q2_K, 'blk.1.ffn_down_exps.weight': Q2_K, 'output.weight': Q2_K }],
    // the router (ffn_gate_inp) is never quantized by llama.cpp: it stays F32 whatever the override says
    ['q4_0 with tensor type overrides', { tensorTypes: ['ffn_gate_inp=q8_0', 'ffn_down=q8_0', 'attn=q6_k'] },
      ['--tensor-type', 'ffn_gate_inp=q8_0', '--tensor-type', 'ffn_down=q8_0', '--tensor-type', 'attn=q6_k'],
      { 'blk.0.ffn_gate_inp.weight': F32, 'blk.0.ffn_down_exps.weight': Q8_0, 'blk.1.attn_v.weight': Q6_K, 'blk.1.ffn_up_exps.weight': Q4_0 }],
    ['q3_k_m with output and token embedding types', { outputType: 'q8_0', tokenEmbeddingType: 'q4_k' }, ['--output-tensor-type', 'q8_0', '--token-embedding-type', 'q4_k'],
      { 'output.weight': Q8_0, 'token_embd.weight': Q4_K }],
  ];
  for (const [label, options, flags, expectTypes] of cases) {
    test(label, async () => {
      const [ours, peer] = await both(label.split(' ')[0], options, flags);
      assert.equal(sha(ours), sha(peer));
      const { types } = contents(ours);
      for (const [name, type] of Object.entries(expectTypes)) assert.equal(types[name], type, name);
    });
  }

  test('iq2_xxs and iq3_s with an importance matrix from llama-imatrix (and ours is the same file)', async () => {
    for (const [type, id] of [['iq2_xxs', IQ2_XXS], ['iq3_s', IQ3_S]]) {
      const [ours, peer] = await both(type, { imatrix: peerImatrix }, ['--imatrix', peerImatrix]);
      assert.equal(sha(ours), sha(peer), type);
      const { keys, types } = contents(ours);
      assert.ok(['quantize.imatrix.file', 'quantize.imatrix.dataset', 'quantize.imatrix.entries_count', 'quantize.imatrix.chunks_count'].every((k) => keys.includes(k)));
      assert.equal(types['blk.0.ffn_up_exps.weight'], id, type);
    }
    const model = await loadModel(src);
    try {
      const ourImatrix = join(dir, 'q.ours.imatrix.gguf');
      await imatrix(model, { file: textFile, contextSize: 64, batchSize: 256, threads: 2, chunks: 4, out: ourImatrix });
      assert.equal(sha(ourImatrix), sha(peerImatrix));
    } finally {
      await model.dispose();
    }
  });

  test('the loaded file is the quantized type', async () => {
    const [ours] = await both('q2_k', { pure: true }, ['--pure']);
    const m = await loadModel(ours);
    try {
      assert.match(m.info.fileType, /Q2_K/);
    } finally {
      await m.dispose();
    }
  });
});

describe('quantizeModel() options', () => {
  test('IQ types without an importance matrix: a RangeError naming imatrix, before any work', async () => {
    for (const type of ['iq2_xxs', 'IQ1_S', 'iq2_m', 'q2_k_s']) {
      await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type }), (e) => e instanceof RangeError && /imatrix/.test(e.message));
    }
    await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type: 'q4_k_m', tensorTypes: ['ffn_up=iq2_xs'] }), /imatrix/);
  });

  test('every llama-quantize type name is known; bad types and overrides are RangeErrors', async () => {
    await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type: 'q9_k' }), RangeError);
    await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type: 'q4_0', tensorTypes: ['attn'] }), RangeError);
    await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type: 'q4_0', tensorTypes: ['attn=q9'] }), RangeError);
    await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type: 'q4_0', outputType: 'x' }), /outputType/);
    await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type: 'q4_0', imatrix: join(dir, 'missing.gguf') }), (e) => e.code === 'ERR_FILE');
    await assert.rejects(quantizeModel(src, join(dir, 'never.gguf'), { type: 'q4_0', pur: true }), /pure/);
  });
});
