// Shared by the equivalence tests: logits of the sample text under a routing, and the tolerance every
// runtime-vs-rewritten-file comparison uses (max|Δlogit| ≤ 1e-4 · max|logit|).
import assert from 'node:assert/strict';

import { maxAbsDiff, sampleText } from './fixtures.mjs';

export const N_TOKENS = 200;

/** Logits of the first N_TOKENS tokens of the sample text, in a fresh context with `routing`. */
export async function logitsOf(model, routing, contextOptions = {}) {
  const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2, routing, ...contextOptions });
  try {
    const tokens = (await model.tokenize(sampleText())).subarray(0, N_TOKENS);
    return await ctx.logits(tokens);
  } finally {
    await ctx.dispose();
  }
}

/** Asserts max|Δlogit| ≤ 1e-4 · max|logit|; returns the difference. */
export function assertClose(a, b, what) {
  const { diff, max } = maxAbsDiff(a, b);
  assert.ok(diff <= 1e-4 * max, `${what}: max |Δlogit| ${diff} > 1e-4 × max |logit| ${max}`);
  return diff;
}
