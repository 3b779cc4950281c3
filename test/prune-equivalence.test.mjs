// Masked experts equal a file with those experts physically removed (issue #13), top-p and k̄ (issue #14),
// llama4's expert-output scale (issue #18). For each architecture, with f32 weights: logits under a
// runtime mask against logits of the file exportModel() wrote with the experts' slices cut out of every
// per-expert tensor (router rows and biases included, expert_count updated), loaded by llama.cpp as any
// GGUF. Tolerance: max|Δlogit| ≤ 1e-4 · max|logit|.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { evaluate, exportModel, loadModel, systemInfo } from '../dist/index.js';
import { assertClose, logitsOf } from './helpers/equivalence.mjs';
import { ARCHS, dir, fixture, maxAbsDiff, sampleText } from './helpers/fixtures.mjs';

function sameBits(a, b) {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

async function kbar(model, routing) {
  const r = await evaluate(model, { text: sampleText(), contextSize: 64, chunks: 3, threads: 2, routing });
  return r.expertsPerToken;
}

for (const arch of Object.keys(ARCHS)) {
  describe(`expert masks: ${arch}`, () => {
    let model;
    const opened = [];
    after(async () => {
      await model?.dispose();
      for (const m of opened) await m.dispose();
    });

    async function viaFile(routing, tag, run) {
      const out = join(dir, `${arch}-prune-${tag}.gguf`);
      await exportModel(model, out, { routing });
      const m = await loadModel(out);
      opened.push(m);
      return { logits: await logitsOf(m, run), path: out, model: m };
    }

    test('setup', async () => {
      model = await loadModel(await fixture(arch));
      assert.equal(model.info.expertCount, 8);
    });

    // experts 2 and 3: for deepseek2 (4 groups of 2) that is one whole group
    const mask = [2, 3];

    test('maskExperts equals the file with those experts removed; the file shrinks by their share', async () => {
      const runtime = await logitsOf(model, { maskExperts: mask });
      const file = await viaFile({ maskExperts: mask }, 'm', undefined);
      assert.equal(file.model.info.expertCount, 6);
      assertClose(runtime, file.logits, 'maskExperts 2,3');
      assert.ok(maxAbsDiff(runtime, await logitsOf(model, undefined)).diff > 1e-3, 'the mask changed nothing');
      // the experts' weights (gate, up, down; f32) are 2/8 of every MoE layer's expert tensors
      const s = ARCHS[arch];
      const expertBytes = model.info.moeLayers.length * 8 * (3 * s.embeddingLength * s.feedForwardLength + s.embeddingLength) * 4;
      const shrink = statSync(model.path).size - statSync(file.path).size;
      const share = (expertBytes * mask.length) / 8;
      assert.ok(shrink >= share && shrink <= share * 1.05 + 4096, `file shrank by ${shrink} bytes, the experts' share is ${share}`);
    });

    test('maskExperts with experts, expertScale and -ser', async () => {
      const routing = { maskExperts: mask, experts: 3, expertScale: 1.3 };
      assertClose(await logitsOf(model, routing), (await viaFile(routing, 'mk', undefined)).logits, 'mask + experts 3 + expertScale 1.3');
      // -ser has no file form: the pruned file evaluated with the same -ser
      const ser = { minWeightRatio: 0.5, experts: 3 };
      assertClose(await logitsOf(model, { maskExperts: mask, ...ser }), (await viaFile({ maskExperts: mask }, 'ms', ser)).logits, 'mask + -ser');
    });

    test('per-layer masks: runtime and file agree; unequal counts are refused for the file', async () => {
      const L = model.info.layers;
      const moe = model.info.moeLayers.map((l) => l.layer);
      const perLayer = Array.from({ length: L }, (_, il) => (moe.includes(il) ? (il === moe[0] ? [0, 1] : [6, 7]) : []));
      assertClose(await logitsOf(model, { maskExperts: perLayer }), (await viaFile({ maskExperts: perLayer }, 'ml', undefined)).logits, 'per-layer mask');
      const unequal = Array.from({ length: L }, (_, il) => (il === moe[0] ? [0, 1] : moe.includes(il) ? [6] : []));
      await assert.rejects(exportModel(model, join(dir, `${arch}-bad.gguf`), { routing: { maskExperts: unequal } }), /one expert count .* for all layers/);
      await assert.rejects(exportModel(model, join(dir, `${arch}-x.gguf`), { routing: { maskExperts: [0, 1, 2, 3, 4, 5, 6] } }), /fewer than the 2 per token/);
    });

    test('topP: p = 1 is the default top-n exactly, p → 0 is one expert; k̄ measured', async () => {
      const base = await logitsOf(model, undefined);
      assert.ok(sameBits(await logitsOf(model, { topP: 1 }), base), 'topP 1 differs from the default');
      assertClose(await logitsOf(model, { topP: 1e-6 }), await logitsOf(model, { experts: 1 }), 'topP 1e-6 vs experts 1');
      const n = model.info.expertsUsed;
      const moeLayers = model.info.moeLayers.length;
      assert.deepEqual(await kbar(model, undefined), { mean: n, perLayer: new Array(moeLayers).fill(n) });
      assert.deepEqual(await kbar(model, { experts: 3 }), { mean: 3, perLayer: new Array(moeLayers).fill(3) });
      assert.deepEqual(await kbar(model, { topP: 1e-6, experts: 4 }), { mean: 1, perLayer: new Array(moeLayers).fill(1) });
      const mid = await kbar(model, { topP: 0.9, experts: 6 });
      assert.ok(mid.mean > 1 && mid.mean < 6, `k̄ of topP 0.9 over 6 experts: ${mid.mean}`);
      assert.equal(mid.perLayer.length, moeLayers);
      const ser = await kbar(model, { minWeightRatio: 0.3, experts: 4 });
      assert.ok(ser.mean >= 1 && ser.mean < 4, `k̄ of -ser 1,0.3 over 4 experts: ${ser.mean}`);
    });
  });
}

describe('expert groups under a mask (deepseek2, 16 experts in 4 groups of 4, 2 groups used)', () => {
  let model;
  const opened = [];
  after(async () => {
    await model?.dispose();
    for (const m of opened) await m.dispose();
  });

  test('one expert from every group: groups of 3, the same as the file', async () => {
    model = await loadModel(await fixture('deepseek2', { expertCount: 16, expertsUsed: 2 }));
    assert.equal(model.info.expertGroups, 4);
    const maskExperts = [1, 6, 8, 15];
    const out = join(dir, 'ds16-m.gguf');
    await exportModel(model, out, { routing: { maskExperts } });
    const m = await loadModel(out);
    opened.push(m);
    assert.equal(m.info.expertCount, 12);
    assert.equal(m.info.expertGroups, 4);
    assertClose(await logitsOf(model, { maskExperts }), await logitsOf(m, undefined), 'mask 1,6,8,15');
  });

  test('a whole group: never chosen, the same as the file without the group', async () => {
    const maskExperts = [4, 5, 6, 7];
    const out = join(dir, 'ds16-g.gguf');
    await exportModel(model, out, { routing: { maskExperts } });
    const m = await loadModel(out);
    opened.push(m);
    assert.equal(m.info.expertGroups, 3);
    assert.equal(m.info.expertGroupsUsed, 2);
    assertClose(await logitsOf(model, { maskExperts }), await logitsOf(m, undefined), 'mask group 1');
  });

  test('unequal groups have no file form', async () => {
    await assert.rejects(exportModel(model, join(dir, 'ds16-bad.gguf'), { routing: { maskExperts: [0, 1, 4] } }), /groups of one size/);
  });
});

// Why a mask and its file agree bit for bit only sometimes (docs/pruning.md, "Runtime mask vs sliced file"):
// llama.cpp's CPU backend computes the router's logits (f32 [d, N] × [d, T]) with llamafile's tinyBLAS when
// the experts (rows) are a multiple of 4 and the ubatch has 2 tokens or more, else with ggml's dot product,
// which sums in another order. The mask keeps all 8 router rows; a file of 6 takes the other kernel, and its
// logits agree only to rounding. Where both take the same kernel, nothing else differs: the same bits — on
// an AVX-512 build, whose softmax is scalar below 16 logits; AVX2 and NEON builds vectorize groups of 8 / 4
// logits, so a softmax over 8 (the mask) and over 4 or 6 (the file) round apart there: within tolerance.
describe('mask vs file: the same bits where llama.cpp computes the router with the same kernel', () => {
  const info = systemInfo();
  const exact = /\bAVX512 = 1/.test(info) && /\bLLAMAFILE = 1/.test(info);
  const same = (a, b, what) => (exact ? assert.ok(sameBits(a, b), `${what}: not the same bits`) : assertClose(a, b, what));
  let model;
  const opened = [];
  after(async () => {
    await model?.dispose();
    for (const m of opened) await m.dispose();
  });
  async function cut(maskExperts, tag) {
    const out = join(dir, `llama-bits-${tag}.gguf`);
    await exportModel(model, out, { routing: { maskExperts } });
    const m = await loadModel(out);
    opened.push(m);
    return m;
  }

  test('4 of 8 experts left: tinyBLAS for both (rows 8 and 4), the same bits', async () => {
    model = await loadModel(await fixture('llama'));
    const maskExperts = [1, 3, 4, 6];
    same(await logitsOf(model, { maskExperts }), await logitsOf(await cut(maskExperts, '4'), undefined), 'mask and file of 4 experts');
  });

  test('6 of 8 left, one token per ubatch: the dot product for both, the same bits (and within tolerance at the default ubatch)', async () => {
    const maskExperts = [2, 5];
    const file = await cut(maskExperts, '6');
    const one = { ubatchSize: 1 };
    same(await logitsOf(model, { maskExperts }, one), await logitsOf(file, undefined, one), 'mask and file of 6 experts at ubatch 1');
    assertClose(await logitsOf(model, { maskExperts }), await logitsOf(file, undefined), 'mask 2,5 at ubatch 256');
  });
});

describe('masks on quantized files, k̄ across ubatches', () => {
  let model;
  after(async () => model?.dispose());

  test('a q8_0 file: the masked experts are cut as whole blocks (no requantization), logits equal the runtime mask to rounding', async () => {
    const { quantizeModel } = await import('../dist/index.js');
    const q = join(dir, 'llama-q8.gguf');
    await quantizeModel(await fixture('llama'), q, { type: 'q8_0', threads: 2 });
    model = await loadModel(q);
    const out = join(dir, 'llama-q8-m.gguf');
    await exportModel(model, out, { routing: { maskExperts: [0, 5] } });
    const m = await loadModel(out);
    try {
      // 6 router rows against 8: another kernel for the router (above), so equal to rounding, not by construction
      assertClose(await logitsOf(model, { maskExperts: [0, 5] }), await logitsOf(m, undefined), 'q8_0: runtime mask vs pruned file');
    } finally {
      await m.dispose();
    }
    // q8_0: 34 bytes per 32 weights; 2 of 8 experts' gate, up and down in each of the 2 layers
    const share = 2 * 2 * 3 * 64 * 64 * (34 / 32);
    const shrink = statSync(q).size - statSync(out).size;
    assert.ok(shrink >= share && shrink <= share * 1.05 + 4096, `file shrank by ${shrink} bytes, the experts' share is ${share}`);
  });

  // Other ubatch sizes change the float rounding of the matmuls a little, so a token whose cumulative
  // probability sits at p can flip: the two counts agree to a few tokens, not bit for bit.
  test('k̄ is counted per ubatch: ubatches of 16 tokens count what one of 128 counts; -ser t=1 keeps one expert', async () => {
    const routing = { topP: 0.8, experts: 5 };
    const run = (ubatchSize) => evaluate(model, { text: sampleText(), contextSize: 128, batchSize: 128, ubatchSize, chunks: 2, threads: 2, routing });
    const whole = (await run(128)).expertsPerToken;
    const split = (await run(16)).expertsPerToken;
    assert.ok(whole.mean > 1 && whole.mean < 5);
    for (let i = 0; i < whole.perLayer.length; i++) assert.ok(Math.abs(whole.perLayer[i] - split.perLayer[i]) < 0.03, `layer ${i}: ${whole.perLayer[i]} vs ${split.perLayer[i]}`);
    assert.equal((await kbar(model, { minWeightRatio: 1, experts: 4 })).mean, 1);
  });

  test('k̄ of a context whose graph was first built as another evaluation\'s reference', async () => {
    const opts = { contextSize: 64, batchSize: 64, threads: 2 };
    const a = await model.createContext(opts);
    const b = await model.createContext({ ...opts, routing: { topP: 0.8, experts: 5 } });
    try {
      await evaluate(a, { text: sampleText(), chunks: 2, reference: b });
      const r = (await evaluate(b, { text: sampleText(), chunks: 2 })).expertsPerToken;
      assert.equal(r.perLayer.length, model.info.moeLayers.length);
      assert.ok(r.mean > 1 && r.mean < 5, `k̄ ${r.mean}`);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});
