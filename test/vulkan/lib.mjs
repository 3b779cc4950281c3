// Shared by the Vulkan suite's files (test/vulkan/*.test.mjs; `npm run test:vulkan`).
import assert from 'node:assert/strict';

import { maxAbsDiff, sampleText } from '../helpers/fixtures.mjs';

/** Every layer and the output layer offloaded (llama.cpp's -ngl 99). */
export const GPU = { gpuLayers: 99 };
export const VK = 'Vulkan0';
/** lavapipe is ~50–100× slower than the CPU backend: 128 tokens per evaluation. */
export const N_TOKENS = 128;

export async function logitsOf(model, routing) {
  const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2, routing });
  try {
    return await ctx.logits((await model.tokenize(sampleText())).subarray(0, N_TOKENS));
  } finally {
    await ctx.dispose();
  }
}

/** max|a − b| ≤ tol · max|a|; returns the relative difference. */
export function assertClose(a, b, what, tol = 1e-4) {
  assert.equal(a.length, b.length, what);
  const { diff, max } = maxAbsDiff(a, b);
  assert.ok(diff <= tol * max, `${what}: max |Δlogit| ${diff} > ${tol} × max |logit| ${max}`);
  return diff / max;
}

export const relDiff = (a, b) => {
  const { diff, max } = maxAbsDiff(a, b);
  return diff / max;
};

export const sameBits = (a, b) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
