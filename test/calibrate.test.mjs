// calibrate(): routing statistics from the graph's own tensors, and α measured from data.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { RoutingProfile, calibrate, evaluate, exportModel, loadModel, resolveRouting } from '../dist/index.js';
import { dir, fixture, sampleText } from './helpers/fixtures.mjs';

const opts = { text: sampleText(), contextSize: 64, batchSize: 256, threads: 2, chunks: 8, experts: 8 };
const opened = [];
after(async () => {
  for (const m of opened) await m.dispose();
});

/** The fixture with its router flattened (ffn_gate_inp × 1e-5): every expert equally likely. */
async function uniformRouter(arch) {
  const model = await loadModel(await fixture(arch));
  opened.push(model);
  const out = join(dir, `${arch}-flat-router.gguf`);
  await exportModel(model, out, { routing: { gateScale: 1e-5 } });
  const flat = await loadModel(out);
  opened.push(flat);
  return flat;
}

describe('calibrate()', () => {
  test('a uniform router with renormalized weights gives the normalization-aware sqrt(m/n)', async () => {
    const model = await uniformRouter('llama');
    const p = await calibrate(model, opts);
    const rho = p.data.global.correlation;
    assert.ok(Math.abs(rho) < 0.1, `independent experts, measured ρ ${rho}`);
    for (const m of [1, 3, 4, 8]) {
      // with correlation ρ: E‖o_m‖² ∝ (1-ρ)/m + ρ
      const expectedAlpha = Math.sqrt(((1 - rho) / 2 + rho) / ((1 - rho) / m + rho));
      const measured = p.globalScale(m);
      assert.ok(Math.abs(measured / expectedAlpha - 1) < 0.1, `m=${m}: measured ${measured}, expected ${expectedAlpha}`);
    }
    assert.ok(p.globalScale(4) > 1.2, 'more experts need a larger scale when weights are renormalized');
    // the measured prior is flat
    for (const l of p.data.layers) assert.ok(Math.abs(l.priorByRank[0] - 1 / 8) < 0.01);
  });

  test('a uniform router without renormalization (qwen2moe) gives the seed\'s sqrt(n/m)', async () => {
    const model = await uniformRouter('qwen2moe');
    assert.equal(model.info.renormalized, false);
    const p = await calibrate(model, opts);
    for (const m of [1, 4, 8]) {
      const measured = p.globalScale(m);
      assert.ok(Math.abs(measured / Math.sqrt(2 / m) - 1) < 0.12, `m=${m}: measured ${measured}, seed ${Math.sqrt(2 / m)}`);
    }
  });

  test('the calibration pass does not change the model: its perplexity is the default one', async () => {
    const model = await loadModel(await fixture('deepseek2'));
    opened.push(model);
    const p = await calibrate(model, opts);
    const r = await evaluate(model, { ...opts, experts: undefined });
    assert.equal(p.data.perplexity, r.perplexity);
    assert.deepEqual(p.data.layers.map((l) => l.layer), [1, 2], 'the dense first layer has no statistics');
    for (const l of p.data.layers) {
      assert.ok(Math.abs(l.selectionFrequency.reduce((a, b) => a + b, 0) - 2) < 1e-9, 'two experts chosen per token');
      assert.equal(l.alpha[1], 1);
    }
  });

  test("profiles round-trip through JSON and drive expertScale: 'calibrated'", async () => {
    const model = await loadModel(await fixture('llama'));
    opened.push(model);
    const p = await calibrate(model, { ...opts, experts: 4 });
    const file = join(dir, 'profile.json');
    await p.save(file);
    const loaded = await RoutingProfile.load(file);
    const r = resolveRouting({ experts: 3, expertScale: 'calibrated', profile: loaded }, model.info);
    assert.deepEqual(r.expertScale, [loaded.scaleFor(0, 3), loaded.scaleFor(1, 3)]);
    assert.notEqual(r.expertScale[0], r.expertScale[1], 'per-layer factors');
    const e = await evaluate(model, { ...opts, experts: undefined, routing: { experts: 3, expertScale: 'calibrated', profile: loaded } });
    assert.equal(e.routing.expertScaleRule, 'calibrated');
    assert.throws(() => resolveRouting({ experts: 5, expertScale: 'calibrated', profile: loaded }, model.info), /measured 1 to 4 experts/);
    assert.throws(() => resolveRouting({ experts: 3, expertScale: 'calibrated' }, model.info), /needs routing.profile/);
  });
});
