// allocate(): the per-layer experts schedule that minimizes the predicted KLD under a budget, checked
// against brute-force enumeration of every schedule (an independent computation), on a hand-checkable
// matrix and on random ones; budgets respected; bad input refused with typed errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { allocate } from '../dist/index.js';

/** A scan result as allocate() reads it: n = 2 of N = 8 per layer; columns are the changes. */
function scanOf(kld, { changes = ['experts=1', 'experts=3'], base = 0, expertParams, otherParams = 1000, dense = [] } = {}) {
  const L = kld.length;
  const moeLayers = [];
  for (let il = 0; moeLayers.length < L; il++) if (!dense.includes(il)) moeLayers.push(il);
  return {
    facts: {
      architecture: 'llama',
      layers: moeLayers[L - 1] + 1,
      moeLayers,
      expertCount: kld.map(() => 8),
      expertsUsed: kld.map(() => 2),
      expertParams: expertParams ?? kld.map(() => 100),
      otherParams,
    },
    changes,
    kld,
    base: { kldMean: base },
  };
}

/** Every schedule, its cost and predicted KLD, by plain enumeration. */
function bruteForce(s, cost, capacity) {
  const options = s.facts.moeLayers.map((_, i) => [
    { k: 2, e: 0 },
    ...s.changes.map((c, j) => ({ k: Number(/^experts=(\d+)$/.exec(c)?.[1]), e: s.kld[i][j] - s.base.kldMean })).filter((o) => Number.isInteger(o.k) && o.k !== 2),
  ]);
  let best = { e: Infinity, ks: null };
  const walk = (i, ks, e, c) => {
    if (c > capacity + 1e-9) return;
    if (i === options.length) {
      if (e < best.e - 1e-15) best = { e, ks };
      return;
    }
    for (const o of options[i]) walk(i + 1, [...ks, o.k], e + o.e, c + cost(i, o.k));
  };
  walk(0, [], 0, 0);
  return best;
}

function rng(seed) {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('allocate()', () => {
  test('a hand-checkable matrix: the least sensitive layers lose an expert first', () => {
    // effects at 1 expert: layer 0 0.05, layer 1 0.01, layer 2 0.02, layer 3 0.04; at 3 experts small but positive
    const s = scanOf([
      [0.05, 0.003],
      [0.01, 0.001],
      [0.02, 0.002],
      [0.04, 0.004],
    ]);
    // mean 1.5 over 4 layers: 6 experts, so two layers at 1: layers 1 and 2 (0.01 + 0.02)
    const a = allocate(s, { meanExperts: 1.5 });
    assert.deepEqual(a.routing.experts, [2, 1, 1, 2]);
    assert.equal(a.experts, '0:2;1-2:1;3:2');
    assert.ok(Math.abs(a.predictedKld - 0.03) < 1e-12);
    assert.equal(a.meanExperts, 1.5);
    assert.deepEqual(a.layers.map((l) => l.effect), [0, 0.01, 0.02, 0]);
    // mean 1.75: one layer at 1, the least sensitive
    assert.deepEqual(allocate(s, { meanExperts: 1.75 }).routing.experts, [2, 1, 2, 2]);
    // the model's own count, or more: nothing to give up, and n+1 only adds KLD
    assert.deepEqual(allocate(s, { meanExperts: 2 }).routing.experts, [2, 2, 2, 2]);
    assert.deepEqual(allocate(s, { meanExperts: 3 }).routing.experts, [2, 2, 2, 2]);
    assert.equal(allocate(s, { meanExperts: 3 }).predictedKld, 0);
    // all at 1
    assert.deepEqual(allocate(s, { meanExperts: 1 }).routing.experts, [1, 1, 1, 1]);
    // the predicted KLD counts from the default's own KLD against the reference
    const shifted = scanOf(s.kld.map((r) => r.map((x) => x + 0.5)), { base: 0.5 });
    assert.ok(Math.abs(allocate(shifted, { meanExperts: 1.5 }).predictedKld - 0.53) < 1e-12);
  });

  test('equals brute-force enumeration on random matrices (mean experts and active parameters)', () => {
    const r = rng(14);
    for (let trial = 0; trial < 60; trial++) {
      const L = 2 + Math.floor(r() * 5);
      const kld = Array.from({ length: L }, () => [r() * 0.1, r() * 0.03, r() * 0.01 - 0.002]);
      const s = scanOf(kld, { changes: ['experts=1', 'experts=3', 'experts=4'] });
      const mean = 1 + Math.floor(r() * 3 * L) / L; // 1 … 4 in steps of 1/L
      const a = allocate(s, { meanExperts: mean });
      const b = bruteForce(s, (_, k) => k, mean * L);
      assert.ok(Math.abs(a.predictedKld - b.e) < 1e-12, `trial ${trial}: allocate ${a.predictedKld} (${a.routing.experts}), brute force ${b.e} (${b.ks})`);
      assert.ok(a.meanExperts <= mean + 1e-12, 'budget respected');
      assert.ok(Math.abs(a.layers.reduce((x, l) => x + l.effect, 0) - a.predictedKld) < 1e-12);

      // active parameters: layers of different expert sizes, so the cheapest layers are not the least sensitive ones
      const expertParams = Array.from({ length: L }, () => 50 + Math.floor(r() * 200));
      const sp = scanOf(kld, { changes: ['experts=1', 'experts=3', 'experts=4'], expertParams, otherParams: 777 });
      const budget = 777 + Math.floor(expertParams.reduce((x, p) => x + p, 0) * (1 + r() * 2));
      const ap = allocate(sp, { activeParams: budget });
      const bp = bruteForce(sp, (i, k) => k * expertParams[i], budget - 777);
      assert.ok(Math.abs(ap.predictedKld - bp.e) < 1e-12, `trial ${trial} (params): ${ap.predictedKld} vs ${bp.e}`);
      assert.ok(ap.activeParams <= budget, `active params ${ap.activeParams} within ${budget}`);
      assert.equal(ap.activeParams, 777 + ap.layers.reduce((x, l, i) => x + l.experts * expertParams[i], 0));
    }
  });

  test('dense layers keep the model count; changes that are not experts counts are ignored', () => {
    const s = scanOf(
      [
        [0.02, 0.5],
        [0.01, 0.5],
      ],
      { changes: ['experts=1', 'expert-scale=0.8'], dense: [0] },
    );
    const a = allocate(s, { meanExperts: 1.5 });
    assert.deepEqual(a.routing.experts, [2, 2, 1]);
    assert.equal(a.experts, '1:2;2:1');
  });

  test('bad input: typed errors naming the option', () => {
    const s = scanOf([[0.01, 0.001]]);
    assert.throws(() => allocate({}, { meanExperts: 1.5 }), (e) => e instanceof TypeError && /scanResult/.test(e.message));
    assert.throws(() => allocate(null, { meanExperts: 1.5 }), TypeError);
    assert.throws(() => allocate(s, {}), (e) => e instanceof TypeError && /exactly one of meanExperts or activeParams/.test(e.message));
    assert.throws(() => allocate(s, { meanExperts: 1, activeParams: 5 }), TypeError);
    assert.throws(() => allocate(s, { meanExpert: 1.5 }), (e) => e instanceof TypeError && /Did you mean 'meanExperts'/.test(e.message));
    assert.throws(() => allocate(s, { meanExperts: '1.5' }), (e) => e instanceof TypeError && /meanExperts/.test(e.message));
    assert.throws(() => allocate(s, { meanExperts: 0.5 }), (e) => e instanceof RangeError && /at least 1 experts per token/.test(e.message));
    assert.throws(() => allocate(s, { meanExperts: NaN }), TypeError);
    assert.throws(() => allocate(s, { activeParams: 1000 }), (e) => e instanceof RangeError && /activeParams/.test(e.message));
    assert.throws(() => allocate(scanOf([[0.01]], { changes: ['expert-scale=0.8'] }), { meanExperts: 1.5 }), (e) => e instanceof RangeError && /experts changes/.test(e.message));
    assert.throws(() => allocate({ ...s, kld: [[0.01]] }, { meanExperts: 1.5 }), TypeError, 'a matrix of the wrong shape');
    assert.throws(() => allocate({ ...s, kld: [[NaN, 0]] }, { meanExperts: 1.5 }), TypeError);
  });
});
