// scan(): each cell is exactly the evaluation with only that layer changed (checked against a separate
// evaluate() against a KL-divergence base written by llama-perplexity, the peer); the default
// routing's perplexity is llama-perplexity's; resume after a cut file; readScan(); typed errors.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MoeEvalError, allocate, evaluate, loadModel, readScan, scan } from '../dist/index.js';
import { dir, fixture, sampleText } from './helpers/fixtures.mjs';
import { runLlamaPerplexity } from './helpers/peers.mjs';

const C = 64;
const B = 128;
const CHUNKS = 4;
const sizes = { contextSize: C, batchSize: B, threads: 2, chunks: CHUNKS };

let model;
let textFile;
let peerBase;
let peerPpl;
before(async () => {
  model = await loadModel(await fixture('llama'));
  textFile = join(dir, 'scan.txt');
  writeFileSync(textFile, sampleText());
  peerBase = join(dir, 'scan-peer.kld');
  peerPpl = (await runLlamaPerplexity(['-m', model.path, '-f', textFile, '-c', String(C), '-b', String(B), '--chunks', String(CHUNKS), '-t', '2', '--kl-divergence-base', peerBase])).perplexity;
});
after(async () => {
  await model?.dispose();
});

describe('scan()', () => {
  test("every cell equals evaluate() with only that layer changed, against llama-perplexity's base", async () => {
    const out = join(dir, 'scan-peer.jsonl');
    rmSync(out, { force: true });
    const changes = [1, 'experts=3', 'expert-scale=0.8', { maskExperts: [0, 1] }, 'experts=3+expert-scale=1.2'];
    const s = await scan(model, { file: textFile, ...sizes, changes, reference: peerBase, out });
    assert.deepEqual(s.changes, ['experts=1', 'experts=3', 'expert-scale=0.8', 'mask-experts=0,1', 'experts=3 expert-scale=1.2']);
    assert.deepEqual(s.facts.moeLayers, [0, 1]);
    assert.equal(s.cells.length, 2 * changes.length);
    assert.equal(s.evaluated, 1 + 2 * changes.length);
    // the default routing against the peer's own base: llama-perplexity's perplexity, KLD ~0 (16-bit base rows)
    assert.ok(Math.abs(s.base.perplexity - peerPpl) < 1e-4 * peerPpl, `${s.base.perplexity} vs llama-perplexity ${peerPpl}`);
    assert.ok(Math.abs(s.base.kldMean) < 1e-4);
    const routingOf = (layer, j) =>
      [{ experts: `${layer}:1` }, { experts: `${layer}:3` }, { expertScale: `${layer}:0.8` }, { maskExperts: `${layer}:0,1` }, { experts: `${layer}:3`, expertScale: `${layer}:1.2` }][j];
    for (const [i, layer] of s.facts.moeLayers.entries()) {
      for (let j = 0; j < changes.length; j++) {
        const r = await evaluate(model, { reference: peerBase, contextSize: C, batchSize: B, threads: 2, routing: routingOf(layer, j) });
        const cell = s.cells.find((c) => c.layer === layer && c.change === s.changes[j]);
        assert.equal(cell.routing, r.routing.label);
        assert.equal(s.kld[i][j], r.kld.kldMean, `layer ${layer} ${s.changes[j]}`);
        assert.equal(cell.perplexity, r.perplexity);
        assert.equal(s.sameTop[i][j], r.kld.sameTop);
        assert.equal(s.deltaPercent[i][j], (100 * (r.perplexity - s.base.perplexity)) / s.base.perplexity);
      }
    }
    // only the changed layer routes differently: k̄ with one of 2 layers at 1 expert is (1 + 2) / 2
    assert.equal(s.cells.find((c) => c.layer === 0 && c.change === 'experts=1').expertsPerToken, 1.5);
    assert.deepEqual(s.cells.find((c) => c.layer === 1 && c.change === 'experts=3').experts, [2, 3]);

    // an allocated schedule is a routing evaluate() takes as is, and it mixes the experts it says
    const a = allocate(s, { meanExperts: 1.5 });
    const r = await evaluate(model, { reference: peerBase, contextSize: C, batchSize: B, threads: 2, routing: a.routing });
    assert.equal(r.expertsPerToken.mean, 1.5);
    assert.deepEqual(r.routing.experts, a.routing.experts);
  });

  test('the default reference: the base is written once; a cut results file resumes to the same matrix; readScan reads it back', async () => {
    const out = join(dir, 'scan-default.jsonl');
    rmSync(out, { force: true });
    rmSync(`${out}.base.kld`, { force: true });
    const cells = [];
    const full = await scan(model, { file: textFile, ...sizes, out, onCell: (c, done, total) => cells.push([c.change, done, total]) });
    assert.deepEqual(full.changes, ['experts=1', 'experts=3'], 'default changes: n-1 … 1, then n+1');
    assert.equal(full.reference, `${out}.base.kld`);
    assert.deepEqual(cells.map((c) => c[1]), [1, 2, 3, 4, 5]);
    assert.ok(cells.every((c) => c[2] === 5));
    // every cell against the base the scan wrote
    const r = await evaluate(model, { reference: full.reference, contextSize: C, batchSize: B, threads: 2, routing: { experts: '1:1' } });
    assert.equal(full.kld[1][0], r.kld.kldMean);

    // cut after the default and one cell, plus a torn line: the rerun evaluates only the rest
    const lines = readFileSync(out, 'utf8').split('\n');
    writeFileSync(out, lines.slice(0, 3).join('\n') + '\n{"key":"to');
    const resumed = await scan(model, { file: textFile, ...sizes, out });
    assert.equal(resumed.resumed, 2);
    assert.equal(resumed.evaluated, 3);
    assert.deepEqual(resumed.kld, full.kld);
    assert.deepEqual(resumed.deltaPercent, full.deltaPercent);
    assert.equal(readFileSync(out, 'utf8').split('\n').filter(Boolean).length, 1 + 5);

    const back = readScan(out);
    assert.deepEqual(back.kld, full.kld);
    assert.deepEqual(back.changes, full.changes);
    assert.deepEqual(back.facts, full.facts);
    assert.equal(back.chunks, CHUNKS);
    assert.deepEqual(allocate(back, { meanExperts: 1.5 }), allocate(full, { meanExperts: 1.5 }));
    // the facts the allocator's parameter budget uses: a gated FFN per expert, 3 · n_embd · n_ff
    assert.deepEqual(full.facts.expertParams, [3 * 64 * 64, 3 * 64 * 64]);
    assert.equal(full.facts.otherParams + 8 * full.facts.expertParams.reduce((x, y) => x + y, 0), model.info.parameters);

    // another text is refused, not mixed in
    await assert.rejects(scan(model, { text: sampleText().slice(100), ...sizes, out }), (e) => e instanceof MoeEvalError && e.code === 'ERR_FILE');
  });

  test('bad input: typed errors before any evaluation', async () => {
    const out = join(dir, 'scan-bad.jsonl');
    const bad = (o) => scan(model, { file: textFile, ...sizes, out, ...o });
    await assert.rejects(bad({ changes: [9] }), (e) => e instanceof RangeError && /changes\[0\] \(experts=9\) in layer 0/.test(e.message) && /routing\.experts/.test(e.message));
    await assert.rejects(bad({ changes: ['experts=1', 'foo=2'] }), (e) => e instanceof TypeError && /changes\[1\]/.test(e.message));
    await assert.rejects(bad({ changes: [] }), (e) => e instanceof TypeError && /changes/.test(e.message));
    await assert.rejects(bad({ changes: [1, 'experts=1'] }), (e) => e instanceof RangeError && /twice/.test(e.message));
    await assert.rejects(bad({ changes: [{ expert: 1 }] }), (e) => e instanceof TypeError && /Did you mean 'experts'/.test(e.message));
    await assert.rejects(bad({ changes: ['mask-experts=0,1,2,3,4,5,6'] }), (e) => e instanceof RangeError && /maskExperts/.test(e.message));
    // the change text is the routing label grammar: its keys, one value each, its expert-id lists
    await assert.rejects(bad({ changes: ['experts=1+experts=3'] }), (e) => e instanceof TypeError && /changes\[0\] names experts twice/.test(e.message));
    await assert.rejects(bad({ changes: ['ser=1,0.3'] }), (e) => e instanceof TypeError && /KEY one of experts, expert-scale, gate-scale, mask-experts/.test(e.message));
    await assert.rejects(bad({ changes: ['mask-experts=0,,1'] }), (e) => e instanceof TypeError && /Expected an expert id for changes\[0\] mask-experts\[1\] but received ""/.test(e.message));
    await assert.rejects(bad({ changes: ['expert-scale=big'] }), (e) => e instanceof TypeError && /Expected a number for changes\[0\] expert-scale but received "big"/.test(e.message));
    await assert.rejects(bad({ chunk: 3 }), (e) => e instanceof TypeError && /Did you mean 'chunks'/.test(e.message));
    await assert.rejects(scan(model, { file: textFile, ...sizes }), (e) => e instanceof TypeError && /out/.test(e.message));
    await assert.rejects(bad({ reference: 5 }), (e) => e instanceof TypeError && /reference/.test(e.message));
    assert.throws(() => readScan(join(dir, 'no-such-scan.jsonl')), (e) => e instanceof MoeEvalError && e.code === 'ERR_FILE');
  });
});
