// Vulkan suite (issue 18), part 2: every routing option on the Vulkan backend equals the file that
// exportModel() rewrote, evaluated on the Vulkan backend, for every tested architecture (tiny models, 128
// tokens), at the CPU suite's tolerance max|Δlogit| ≤ 1e-4 · max|logit|.
//
// This file runs ggml-vulkan with GGML_VK_DISABLE_F16=1 (f32 arithmetic on the device). With the default
// f16 arithmetic (f16 accumulators, f16 in attention) a difference of one f32 rounding between the two
// sides (the file stores the scaled weights rounded once, the runtime scales after the product) moves the
// logits by up to ~8e-4 · max|logit| (measured on the llama fixture, expertScale 1.7: 7.8e-4 with f16,
// 6.3e-6 with GGML_VK_DISABLE_F16=1, 3.3e-6 on the CPU backend), which no tolerance tight enough to catch
// a wrong routing separates from rounding. The routing ops themselves (scale, add, step, get_rows, top-k)
// are f32 either way; the default f16 path is checked in fusion.test.mjs and evaluate.test.mjs.
// -ser and top-p have no file form: at their limits (-ser 1,1 and top-p → 0: one expert; -ser 1,1e-6: all)
// they equal the expert_used_count = 1 and 3 files; in between they equal the CPU backend (fusion.test.mjs).
process.env.GGML_VK_DISABLE_F16 = '1'; // read when ggml-vulkan starts, at the first model load

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { exportModel, loadModel } from '../../dist/index.js';
import { ARCHS, dir, fixture, sampleText } from '../helpers/fixtures.mjs';
import { GPU, N_TOKENS, VK, assertClose, logitsOf, relDiff, sameBits } from './lib.mjs';

for (const arch of Object.keys(ARCHS)) {
  describe(`routing on Vulkan equals the rewritten file: ${arch}`, () => {
    let model;
    let base;
    const opened = [];
    after(async () => {
      await model?.dispose();
      for (const m of opened) await m.dispose();
    });

    async function viaFile(routing, tag) {
      const out = join(dir, `vk-${arch}-${tag}.gguf`);
      await exportModel(model, out, { routing });
      const m = await loadModel(out, GPU);
      opened.push(m);
      assert.ok(m.info.placement.layers.every((d) => d === VK));
      return logitsOf(m, undefined);
    }

    test('default routing is bit-identical to llama.cpp without the hook', async () => {
      model = await loadModel(await fixture(arch), GPU);
      assert.ok(model.info.placement.layers.every((d) => d === VK) && model.info.placement.output === VK);
      const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2 });
      const tokens = (await model.tokenize(sampleText())).subarray(0, N_TOKENS);
      base = await ctx.logits(tokens);
      ctx.setHookActive(false);
      const plain = await ctx.logits(tokens);
      await ctx.dispose();
      assert.ok(sameBits(base, plain));
    });

    test('expertScale (global and per layer) equals scaled ffn_down_exps', async () => {
      const runtime = await logitsOf(model, { expertScale: 1.7 });
      assertClose(runtime, await viaFile({ expertScale: 1.7 }, 'es'), 'expertScale 1.7');
      assert.ok(relDiff(runtime, base) > 1e-2, 'expertScale changed nothing');
      const perLayer = { expertScale: Array.from({ length: model.info.layers }, (_, i) => 0.6 + 0.45 * i) };
      assertClose(await logitsOf(model, perLayer), await viaFile(perLayer, 'esl'), 'per-layer expertScale');
    });

    test('gateScale equals scaled ffn_gate_inp', async () => {
      const runtime = await logitsOf(model, { gateScale: 0.6 });
      assertClose(runtime, await viaFile({ gateScale: 0.6 }, 'gs'), 'gateScale 0.6');
      assert.ok(relDiff(runtime, base) > 1e-2, 'gateScale changed nothing');
    });

    let threeExperts;
    test('experts = 3 equals expert_used_count = 3', async () => {
      const runtime = await logitsOf(model, { experts: 3 });
      threeExperts = await viaFile({ experts: 3 }, 'k3');
      assertClose(runtime, threeExperts, 'experts 3');
      assert.ok(relDiff(runtime, base) > 1e-2, 'experts changed nothing');
    });

    test('maskExperts equals the file with those experts removed', async () => {
      const runtime = await logitsOf(model, { maskExperts: [2, 3] });
      assertClose(runtime, await viaFile({ maskExperts: [2, 3] }, 'm'), 'maskExperts 2,3');
      assert.ok(relDiff(runtime, base) > 1e-2, 'the mask changed nothing');
    });

    test('-ser and top-p at their limits equal the expert_used_count = 1 and 3 files', async () => {
      const oneExpert = await viaFile({ experts: 1 }, 'k1');
      // -ser 1,1 keeps the first chosen expert only where no selection bias reorders the choice (deepseek2's
      // bias ranks by biased score, -ser's threshold reads the unbiased weights: a later expert can outweigh the first)
      if (!model.info.moeLayers.some((l) => l.selectionBias)) {
        assertClose(await logitsOf(model, { experts: 3, minExperts: 1, minWeightRatio: 1 }), oneExpert, '-ser 1,1 over 3');
      }
      assertClose(await logitsOf(model, { experts: 3, minExperts: 1, minWeightRatio: 1e-6 }), threeExperts, '-ser 1,1e-6 over 3');
      assertClose(await logitsOf(model, { experts: 4, topP: 1e-6 }), oneExpert, 'topP 1e-6 over 4');
      assert.ok(sameBits(await logitsOf(model, { topP: 1 }), base), 'topP 1 differs from the default');
    });
  });
}
