// Vulkan suite (issue 18), part 1: the device, the placement of the layers, and evaluate() against
// llama-perplexity built from the same Vulkan tree (build-vulkan/), every layer on the Vulkan device (in
// CI Mesa's lavapipe, a CPU-type device that GGML_VK_VISIBLE_DEVICES=0 makes visible). Run by
// `npm run test:vulkan` only, never by `npm test`; outside a Vulkan build it fails, it never skips.
//
// - Model.info.placement equals llama.cpp's own load_tensors log (Vulkan0 / CPU by -ngl);
// - evaluate() equals llama-perplexity's printed perplexity and ± (4 decimals), and the default routing is
//   bit-identical to llama-perplexity's: the KL-divergence base files (every scored token's log-probabilities)
//   of both are byte-identical, on every architecture.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { devices, evaluate, loadModel } from '../../dist/index.js';
import { ARCHS, dir, fixture, sampleText } from '../helpers/fixtures.mjs';
import { runLlamaPerplexity } from '../helpers/peers.mjs';
import { loadLogged } from '../helpers/placement.mjs';
import { GPU, VK } from './lib.mjs';

let textFile;
before(() => {
  textFile = join(dir, 'vulkan.txt');
  writeFileSync(textFile, sampleText());
});

describe('a Vulkan build with a Vulkan device', () => {
  test('devices() lists the Vulkan device and the CPU', () => {
    const vk = devices().find((d) => d.name === VK);
    assert.ok(vk, `no ${VK} in ${JSON.stringify(devices())}: not a MOE_EVAL_GPU=vulkan build, or GGML_VK_VISIBLE_DEVICES is not set (lavapipe is a CPU-type device)`);
    assert.equal(vk.backend, 'Vulkan');
    assert.ok(vk.description.length > 0 && vk.memoryTotal > 0);
    assert.ok(devices().some((d) => d.name === 'CPU'));
  });

  // llama.cpp's rule: -ngl counts from the output layer down (n_layer + 1 layers in all)
  for (const [gpuLayers, layers, output] of [[99, [VK, VK], VK], [0, ['CPU', 'CPU'], 'CPU'], [2, ['CPU', VK], VK]]) {
    test(`placement with gpuLayers ${gpuLayers}: ${layers.join(', ')}, output ${output}, as llama.cpp logs it`, async () => {
      const { model, logged } = await loadLogged(await fixture('llama'), { gpuLayers });
      try {
        assert.deepEqual(model.info.placement, logged);
        assert.deepEqual(model.info.placement, { layers, output });
      } finally {
        await model.dispose();
      }
    });
  }
});

describe('evaluate() equals llama-perplexity from the same Vulkan build', () => {
  test('perplexity and ± (-c 128, 2 chunks, every layer on Vulkan)', async () => {
    const model = await loadModel(await fixture('llama'), GPU);
    try {
      const r = await evaluate(model, { file: textFile, contextSize: 128, batchSize: 128, chunks: 2, threads: 2 });
      const peer = await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', '128', '-b', '128', '--chunks', '2', '-t', '2', '-ngl', '99', '--verbose']);
      assert.match(peer.output, /load_tensors: layer +1 assigned to device Vulkan0/);
      assert.match(peer.output, /offloaded 3\/3 layers to GPU/);
      // llama-perplexity prints 4 decimals
      assert.ok(Math.abs(r.perplexity - peer.perplexity) <= 0.5e-4 + 1e-6 * peer.perplexity, `moe-eval ${r.perplexity} vs llama-perplexity ${peer.perplexity}`);
      assert.ok(Math.abs(r.stderr - peer.stderr) <= 0.5e-5 + 1e-6 * peer.stderr, `± ${r.stderr} vs ${peer.stderr}`);
    } finally {
      await model.dispose();
    }
  });

  for (const arch of Object.keys(ARCHS)) {
    test(`${arch}: the default routing's KL-divergence base is byte-identical to llama-perplexity's`, async () => {
      const model = await loadModel(await fixture(arch), GPU);
      try {
        assert.ok(model.info.placement.layers.every((d) => d === VK) && model.info.placement.output === VK);
        const ours = join(dir, `vk-${arch}-ours.kld`);
        const theirs = join(dir, `vk-${arch}-peer.kld`);
        await evaluate(model, { file: textFile, contextSize: 128, batchSize: 128, chunks: 1, threads: 2, saveReference: ours });
        await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', '128', '-b', '128', '--chunks', '1', '-t', '2', '-ngl', '99', '--kl-divergence-base', theirs]);
        const a = readFileSync(ours);
        const b = readFileSync(theirs);
        // a header, then for each scored token (63 of a 128-token chunk) its log-probabilities, 16 bits each
        assert.ok(a.length > 63 * 2 * model.info.vocabSize, `${a.length} bytes`);
        assert.equal(Buffer.compare(a, b), 0, `${ours} and ${theirs} differ`);
      } finally {
        await model.dispose();
      }
    });
  }
});
