// Scale factors: the seed's formula reproduced to 4 decimals, and the renormalized correction proven
// by Monte-Carlo over random i.i.d. expert outputs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { expectedNormSquared, parseScaleRule, scaleFactor, zipfPrior } from '../dist/index.js';

const r4 = (x) => Math.round(x * 1e4) / 1e4;

describe('scaleFactor', () => {
  test("reproduces the seed's printed table (N=8, n=2, un-normalized weights)", () => {
    const seed = (m, s) => r4(scaleFactor({ expertCount: 8, trained: 2, experts: m, prior: { zipf: s }, renormalized: false }));
    assert.equal(seed(1, 0), 1.4142);
    assert.equal(seed(3, 0), 0.8165);
    assert.equal(seed(8, 0), 0.5);
    assert.equal(seed(1, 1), 1.118);
    assert.equal(seed(3, 1), 0.9583);
    assert.equal(r4(scaleFactor({ expertCount: 8, trained: 2, experts: 3, prior: 'uniform', renormalized: false })), 0.8165);
  });

  test('renormalized top-k: uniform gives sqrt(m/n), the opposite of the seed', () => {
    assert.equal(r4(scaleFactor({ expertCount: 8, trained: 2, experts: 3, prior: 'uniform', renormalized: true })), 1.2247);
    assert.equal(r4(scaleFactor({ expertCount: 8, trained: 2, experts: 3, prior: { zipf: 1 }, renormalized: true })), 1.1713);
    for (let m = 1; m <= 8; m++) {
      assert.ok(Math.abs(scaleFactor({ expertCount: 8, trained: 2, experts: m, renormalized: true }) - Math.sqrt(m / 2)) < 1e-12);
    }
  });

  test('correlation ρ: full correlation under renormalization needs no correction', () => {
    assert.ok(Math.abs(scaleFactor({ expertCount: 8, trained: 2, experts: 5, renormalized: true, correlation: 0.999999 }) - 1) < 1e-5);
    // partial correlation sits between
    const a = scaleFactor({ expertCount: 8, trained: 2, experts: 4, renormalized: true, correlation: 0.3 });
    assert.ok(a > 1 && a < Math.sqrt(2));
  });

  test('renormalized formula agrees with a Monte-Carlo of i.i.d. expert outputs', () => {
    // deterministic PRNG + Box-Muller
    let s = 12345;
    const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
    const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-300)) * Math.cos(2 * Math.PI * rand());
    const N = 8;
    const D = 16;
    const trials = 20000;
    for (const [prior, p] of [['uniform', zipfPrior(N, 0)], [{ zipf: 1 }, zipfPrior(N, 1)]]) {
      for (const [n, m] of [[2, 1], [2, 3], [2, 6]]) {
        const norm = (k) => {
          let acc = 0;
          for (let t = 0; t < trials; t++) {
            const w = p.slice(0, k);
            const sum = w.reduce((a, b) => a + b, 0);
            for (let d = 0; d < D; d++) {
              let o = 0;
              for (let i = 0; i < k; i++) o += (w[i] / sum) * gauss();
              acc += o * o;
            }
          }
          return acc / trials;
        };
        const mc = Math.sqrt(norm(n) / norm(m));
        const formula = scaleFactor({ expertCount: N, trained: n, experts: m, prior, renormalized: true });
        // sampling error of a ratio of two means of chi-square-like sums over 20000×16 draws: ~0.5%
        assert.ok(Math.abs(mc / formula - 1) < 0.015, `${JSON.stringify(prior)} n=${n} m=${m}: Monte-Carlo ${mc} vs formula ${formula}`);
      }
    }
  });

  test('expectedNormSquared and named rules', () => {
    assert.equal(expectedNormSquared([0.5, 0.5], 2, true), 0.5);
    assert.deepEqual(parseScaleRule('seed-zipf:1'), { name: 'seed-zipf:1', kind: 'closed-form', prior: { zipf: 1 }, renormalized: false });
    assert.equal(parseScaleRule('uniform').renormalized, 'model');
    assert.equal(parseScaleRule('bogus'), undefined);
  });

  test('bad arguments are RangeErrors that say what was expected', () => {
    assert.throws(() => scaleFactor({ expertCount: 8, trained: 2, experts: 9, renormalized: true }), { name: 'RangeError', message: /experts but received number 9/ });
    assert.throws(() => scaleFactor({ expertCount: 8, trained: 0, experts: 1, renormalized: true }), RangeError);
    assert.throws(() => scaleFactor({ expertCount: 8, trained: 2, experts: 1, renormalized: true, prior: { zipf: -1 } }), RangeError);
  });
});
