// Runtime routing equals a rewritten GGUF file, on every MoE layout we support (issue: runtime routing).
// For each architecture, with f32 weights: logits under a runtime routing against logits of the file
// that exportModel() rewrote to bake the same routing in. Tolerance: max|Δlogit| ≤ 1e-4 · max|logit|.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { exportModel, loadModel } from '../dist/index.js';
import { assertClose, logitsOf, N_TOKENS } from './helpers/equivalence.mjs';
import { ARCHS, dir, fixture, maxAbsDiff, sampleText } from './helpers/fixtures.mjs';

for (const arch of Object.keys(ARCHS)) {
  describe(`routing equivalence: ${arch}`, () => {
    let model;
    const opened = [];
    after(async () => {
      await model?.dispose();
      for (const m of opened) await m.dispose();
    });

    async function viaFile(routing, tag) {
      const out = join(dir, `${arch}-${tag}.gguf`);
      await exportModel(model, out, { routing });
      const m = await loadModel(out);
      opened.push(m);
      return logitsOf(m, undefined);
    }

    test('setup', async () => {
      model = await loadModel(await fixture(arch));
      assert.ok(model.info.expertCount === 8 && model.info.moeLayers.length > 0);
    });

    test('default routing is bit-identical to llama.cpp without the hook', async () => {
      const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2 });
      const tokens = (await model.tokenize(sampleText())).subarray(0, N_TOKENS);
      const hooked = await ctx.logits(tokens);
      ctx.setHookActive(false);
      const plain = await ctx.logits(tokens);
      await ctx.dispose();
      assert.equal(Buffer.compare(Buffer.from(hooked.buffer), Buffer.from(plain.buffer)), 0);
    });

    test('expertScale (global) equals scaled ffn_down_exps', async () => {
      const routing = { expertScale: 1.7 };
      const runtime = await logitsOf(model, routing);
      const file = await viaFile(routing, 'es');
      assertClose(runtime, file, 'expertScale 1.7');
      // and it is not a no-op
      const base = await logitsOf(model, undefined);
      assert.ok(maxAbsDiff(runtime, base).diff > 1e-3, 'expertScale changed nothing');
    });

    test('expertScale (per layer) equals per-layer scaled ffn_down_exps', async () => {
      const routing = { expertScale: Array.from({ length: model.info.layers }, (_, i) => 0.6 + 0.45 * i) };
      assertClose(await logitsOf(model, routing), await viaFile(routing, 'esl'), 'per-layer expertScale');
    });

    test('gateScale equals scaled ffn_gate_inp', async () => {
      const routing = { gateScale: 0.6 };
      const runtime = await logitsOf(model, routing);
      assertClose(runtime, await viaFile(routing, 'gs'), 'gateScale 0.6');
      assert.ok(maxAbsDiff(runtime, await logitsOf(model, undefined)).diff > 1e-3, 'gateScale changed nothing');
    });

    test('experts = 3 equals expert_used_count = 3', async () => {
      const routing = { experts: 3 };
      const runtime = await logitsOf(model, routing);
      assertClose(runtime, await viaFile(routing, 'k3'), 'experts 3');
      assert.ok(maxAbsDiff(runtime, await logitsOf(model, undefined)).diff > 1e-3, 'experts changed nothing');
    });

    test('per-layer experts: each layer follows its own count', async () => {
      const L = model.info.layers;
      const n = model.info.expertsUsed;
      const uniform3 = await logitsOf(model, { experts: new Array(L).fill(3) });
      assert.equal(Buffer.compare(Buffer.from(uniform3.buffer), Buffer.from((await logitsOf(model, { experts: 3 })).buffer)), 0);
      // changing only the last MoE layer's count changes the output, and differs from changing all
      const last = model.info.moeLayers.at(-1).layer;
      const onlyLast = Array.from({ length: L }, (_, i) => (i === last ? 3 : n));
      const lastOnly = await logitsOf(model, { experts: onlyLast });
      assert.ok(maxAbsDiff(lastOnly, await logitsOf(model, undefined)).diff > 1e-3);
      assert.ok(maxAbsDiff(lastOnly, uniform3).diff > 1e-3);
      await assert.rejects(exportModel(model, join(dir, `${arch}-kl.gguf`), { routing: { experts: onlyLast } }), /Per-layer expert counts/);
    });
  });
}
