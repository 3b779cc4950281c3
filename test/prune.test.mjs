// pruneExperts(): masks ranked from a routing profile; pruneSweep(): ratios × criteria on one load, resumable.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MoeEvalError, RoutingProfile, calibrate, evaluate, exportModel, loadModel, pruneExperts, pruneMask, pruneSweep, resolveRouting } from '../dist/index.js';
import { dir, fixture, maxAbsDiff, root, sampleText } from './helpers/fixtures.mjs';

const textFile = join(root, 'vendor', 'llama.cpp', 'README.md');
let model;
let other;
let profile;
before(async () => {
  model = await loadModel(await fixture('llama'));
  other = await loadModel(await fixture('qwen3moe'));
  profile = await calibrate(model, { file: textFile, contextSize: 64, batchSize: 256, threads: 2, chunks: 8, experts: 2 });
});
after(async () => {
  await model?.dispose();
  await other?.dispose();
});

/** The ids of the `count` lowest values (ties: the higher id first), sorted. */
function lowest(values, count) {
  return values.map((s, e) => ({ s, e })).sort((a, b) => a.s - b.s || b.e - a.e).slice(0, count).map((x) => x.e).sort((a, b) => a - b);
}

describe('pruneExperts()', () => {
  test('per layer: the ⌊ratio·N⌋ experts with the lowest score go, in every layer', () => {
    for (const [by, field] of [['reap', 'reap'], ['frequency', 'expertTokens'], ['weight', 'meanWeight']]) {
      for (const [ratio, count] of [[0.125, 1], [0.25, 2], [0.3, 2], [0.5, 4], [0.75, 6]]) {
        const mask = pruneMask(profile, { ratio, by, model });
        assert.deepEqual(mask.map((l) => l.removed), profile.data.layers.map((l) => lowest(l[field], count)), `${by} ${ratio}`);
      }
    }
    const r = pruneExperts(profile, { ratio: 0.25, by: 'reap', model });
    const mask = pruneMask(profile, { ratio: 0.25, by: 'reap' });
    assert.equal(r.maskExperts, mask.map((l) => `${l.layer}:${l.removed.join(',')}`).join(';'));
    // the text is the routing grammar: it resolves, and names the same experts
    assert.deepEqual(resolveRouting(r, model.info).maskExperts, mask.map((l) => l.removed));
    assert.deepEqual(pruneExperts(profile, { ratio: 0 }), { maskExperts: 'none' });
    assert.deepEqual(pruneExperts(profile, { keep: 6, by: 'frequency' }), pruneExperts(profile, { ratio: 0.25, by: 'frequency' }));
  });

  test('REAP ranks by saliency, not by how often an expert is chosen', () => {
    // on this fixture the two orders differ somewhere (otherwise REAP would be frequency by another name)
    const a = pruneMask(profile, { ratio: 0.5, by: 'reap' });
    const b = pruneMask(profile, { ratio: 0.5, by: 'frequency' });
    const l = profile.data.layers[0];
    const rank = (v) => v.map((x, e) => ({ x, e })).sort((p, q) => p.x - q.x).map((p) => p.e).join();
    assert.ok(rank(l.reap) !== rank(l.expertTokens) || JSON.stringify(a) !== JSON.stringify(b), 'REAP and frequency rank identically on every layer');
  });

  test('random: seeded, the same every run, another seed another mask; global keeps every layer above n', () => {
    const a = pruneMask(profile, { ratio: 0.5, by: 'random', seed: 1 });
    assert.deepEqual(pruneMask(profile, { ratio: 0.5, by: 'random', seed: 1 }), a);
    const others = [2, 3, 4, 5].map((seed) => JSON.stringify(pruneMask(profile, { ratio: 0.5, by: 'random', seed })));
    assert.ok(others.some((x) => x !== JSON.stringify(a)));
    for (const l of a) assert.equal(l.removed.length, 4);

    for (const by of ['reap', 'frequency', 'random']) {
      const g = pruneMask(profile, { ratio: 0.75, by, scope: 'global' });
      assert.equal(g.reduce((s, l) => s + l.removed.length, 0), 12, by);
      for (const l of g) assert.ok(8 - l.removed.length >= 2, `${by}: layer ${l.layer} keeps ${8 - l.removed.length}`);
    }
    // global by frequency: the removed are the lowest over the whole model (frequencies compare across layers)
    const g = pruneMask(profile, { ratio: 0.25, by: 'frequency', scope: 'global' });
    const all = profile.data.layers.flatMap((l) => l.expertTokens.map((t, e) => ({ t, e, layer: l.layer })));
    const maxRemoved = Math.max(...g.flatMap((l) => l.removed.map((e) => profile.data.layers.find((x) => x.layer === l.layer).expertTokens[e])));
    const kept = all.filter((x) => !g.find((l) => l.layer === x.layer).removed.includes(x.e));
    assert.ok(kept.every((x) => x.t >= maxRemoved), 'no kept expert has fewer tokens than a removed one');
  });

  test('bad input: typed errors before anything is computed', async () => {
    assert.throws(() => pruneExperts(profile, { ratio: 1 }), (e) => e instanceof RangeError && /Expected a fraction of experts removed in \[0, 1\) for ratio but received number 1/.test(e.message));
    assert.throws(() => pruneExperts(profile, { ratio: -0.1 }), RangeError);
    assert.throws(() => pruneExperts(profile, { ratio: 0.875 }), (e) => e instanceof RangeError && /leaves 1 experts per layer, fewer than the 2 experts per token/.test(e.message));
    assert.throws(() => pruneExperts(profile, { keep: 1 }), RangeError);
    assert.throws(() => pruneExperts(profile, {}), TypeError);
    assert.throws(() => pruneExperts(profile, { ratio: 0.5, keep: 4 }), TypeError);
    assert.throws(() => pruneExperts(profile, { ratio: 0.5, by: 'reaper' }), (e) => e instanceof TypeError && /'reap', 'frequency', 'weight', 'random' for by/.test(e.message));
    assert.throws(() => pruneExperts(profile, { ratio: 0.5, scope: 'layer' }), TypeError);
    assert.throws(() => pruneExperts(profile, { ratio: 0.5, ration: 1 }), (e) => e instanceof TypeError && /ratio/.test(e.message));
    assert.throws(() => pruneExperts({}, { ratio: 0.5 }), TypeError);
    // a profile measured on another model file
    assert.throws(() => pruneExperts(profile, { ratio: 0.25, model: other }), (e) => e instanceof MoeEvalError && e.code === 'ERR_PROFILE_MISMATCH' && /another model file/.test(e.message));
    // a profile without per-expert statistics (version 2) ranks only at random
    const v2 = new RoutingProfile({ ...profile.data, version: 2, layers: profile.data.layers.map(({ reap, expertTokens, meanWeight, meanOutputNorm, ...l }) => l) });
    assert.throws(() => pruneExperts(v2, { ratio: 0.25 }), (e) => e instanceof MoeEvalError && e.code === 'ERR_PROFILE_MISMATCH' && /calibrate again/.test(e.message));
    assert.equal(pruneMask(v2, { ratio: 0.25, by: 'random' }).length, 2);
  });

  test('the pruned routing evaluates as the file with those experts cut out', async () => {
    const routing = pruneExperts(profile, { ratio: 0.25, by: 'reap', model });
    const out = join(dir, 'reap-25.gguf');
    await exportModel(model, out, { routing });
    const cut = await loadModel(out);
    try {
      assert.equal(cut.info.expertCount, 6);
      const tokens = (await model.tokenize(sampleText())).subarray(0, 100);
      const logitsOf = async (m, r) => {
        const ctx = await m.createContext({ contextSize: 128, batchSize: 128, threads: 2, routing: r });
        try {
          return await ctx.logits(tokens);
        } finally {
          await ctx.dispose();
        }
      };
      const { diff, max } = maxAbsDiff(await logitsOf(model, routing), await logitsOf(cut, {}));
      assert.ok(diff <= 1e-3 * max, `max |Δlogit| ${diff} (max ${max})`);
    } finally {
      await cut.dispose();
    }
  });
});

describe('pruneSweep()', () => {
  const opts = { file: textFile, ratios: [0, 0.25, 0.5], by: ['reap', 'frequency', 'random'], contextSize: 64, batchSize: 256, threads: 2, chunks: 3, calibrationChunks: 8, reference: 'default' };

  test('ratios × criteria on one load: one row each, masks evaluated once, the numbers evaluate() gives; a rerun resumes', async () => {
    const out = join(dir, 'prune-sweep', 'prune.jsonl');
    const r = await pruneSweep(model, { ...opts, calibration: { file: textFile }, out });
    assert.equal(r.rows.length, 9);
    assert.equal(r.calibrated, true);
    assert.deepEqual(r.rows.map((x) => `${x.by}:${x.ratio}`), ['reap:0', 'reap:0.25', 'reap:0.5', 'frequency:0', 'frequency:0.25', 'frequency:0.5', 'random:0', 'random:0.25', 'random:0.5']);
    // ratio 0 is the model itself for every criterion: one evaluation, KLD ~0
    const zero = r.rows.filter((x) => x.ratio === 0);
    assert.ok(zero.every((x) => x.routing === 'default' && x.perplexity === zero[0].perplexity && x.kldMean < 1e-4));
    assert.ok(r.sweep.evaluated <= 7 && r.sweep.duplicates.length >= 2);
    for (const x of r.rows) {
      assert.equal(x.keptFraction, 1 - x.ratio);
      assert.deepEqual(x.removedPerLayer, [8 * x.ratio, 8 * x.ratio]);
      if (x.ratio > 0) assert.ok(x.kldMean > 0, `${x.by} ${x.ratio}: KLD ${x.kldMean}`);
    }
    // the same profile (written beside the results) gives the same masks; a row is what evaluate() measures
    const saved = await RoutingProfile.load(r.profilePath);
    const row = r.rows.find((x) => x.by === 'reap' && x.ratio === 0.5);
    assert.equal(row.maskExperts, pruneExperts(saved, { ratio: 0.5, by: 'reap', model }).maskExperts);
    const direct = await evaluate(model, { file: textFile, contextSize: 64, batchSize: 256, threads: 2, chunks: 3, routing: { maskExperts: row.maskExperts } });
    assert.equal(direct.perplexity, row.perplexity);
    assert.ok(direct.expertsPerToken.mean === 2);

    const lines = readFileSync(out, 'utf8').trim().split('\n');
    assert.equal(JSON.parse(lines[0]).kind, 'sweep');
    const again = await pruneSweep(model, { ...opts, calibration: { file: textFile }, out });
    assert.equal(again.calibrated, false, 'the kept profile is reused');
    assert.equal(again.sweep.evaluated, 0);
    assert.deepEqual(again.rows, r.rows);
  });

  test('a given profile; bad ratios and a profile of another model are refused before any evaluation', async () => {
    const out = join(dir, 'prune-sweep', 'given.jsonl');
    const r = await pruneSweep(model, { ...opts, ratios: [0.125], by: ['weight'], reference: undefined, profile, out });
    assert.equal(r.rows.length, 1);
    assert.equal(r.profilePath, null);
    assert.equal(r.rows[0].kldMean, null);
    await assert.rejects(pruneSweep(model, { ...opts, profile, ratios: [0.875], out }), (e) => e instanceof RangeError && /ratios\[0\] = 0.875/.test(e.message));
    await assert.rejects(pruneSweep(model, { ...opts, profile, ratios: [1], out }), RangeError);
    await assert.rejects(pruneSweep(model, { ...opts, out }), TypeError, 'calibration or profile');
    await assert.rejects(pruneSweep(other, { ...opts, profile, out: join(dir, 'prune-sweep', 'other.jsonl') }), (e) => e.code === 'ERR_PROFILE_MISMATCH');
  });
});
