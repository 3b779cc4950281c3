// calibrate()'s per-expert statistics (profile version 3: tokens routed, mean router weight, mean
// ‖expert output‖, REAP saliency) against two independent peers built from the same vendor tree:
//  - frequency: llama-imatrix's per-expert token counts (blk.L.ffn_down_exps.weight) on the same text
//    and settings, which must be equal exactly;
//  - weight, norm and REAP: recomputed here in JavaScript from the tensors llama.cpp's own
//    llama-eval-callback prints (ffn_moe_topk, ffn_moe_weights_norm, ffn_moe_down: the chosen ids, the
//    mixing weights the graph computed and the experts' outputs before weighting), on a fixture small
//    enough (4-dim embeddings) for it to print every value. Nothing of moe-eval's statistics code is
//    shared: the weights are read from the graph, not recomputed from the router's probabilities.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { RoutingProfile, calibrate, loadModel, readImatrix } from '../dist/index.js';
import { dir, fixture, root } from './helpers/fixtures.mjs';
import { llamaImatrix, runPeer } from './helpers/peers.mjs';

const llamaEvalCallback = join(root, 'build', 'tools', 'eval-callback', 'llama-eval-callback');
const textFile = join(root, 'vendor', 'llama.cpp', 'README.md');

const opened = [];
after(async () => {
  for (const m of opened) await m.dispose();
});

/**
 * llama-eval-callback's printout → { name: { ne, values: Map('i0,i1,i2' → number) } } (the last
 * evaluation of each tensor). It prints a dimension longer than 6 as its first and last 3 indices.
 */
function parseEvalCallback(out, wanted) {
  const tensors = {};
  const lines = out.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const h = /common_debug_cb_eval:\s+(\S+) = \((\w+)\).* = \{(\d+), (\d+), (\d+), (\d+)\}\s*$/.exec(lines[i]);
    if (!h || !wanted.test(h[1])) continue;
    const ne = [Number(h[3]), Number(h[4]), Number(h[5]), Number(h[6])];
    const nums = [];
    for (i++; i < lines.length && !/^\s*sum = /.test(lines[i]); i++) {
      if (/^\s*\[\s*[-\d]/.test(lines[i])) nums.push(...lines[i].match(/-?(\d+\.\d+|nan|inf)/g).map(Number));
    }
    const shown = (n) => (n > 6 ? [0, 1, 2, n - 3, n - 2, n - 1] : Array.from({ length: n }, (_, k) => k));
    const values = new Map();
    let k = 0;
    for (const i3 of shown(ne[3])) for (const i2 of shown(ne[2])) for (const i1 of shown(ne[1])) for (const i0 of shown(ne[0])) values.set(`${i0},${i1},${i2},${i3}`, nums[k++]);
    assert.equal(k, nums.length, `${h[1]}: ${nums.length} values printed, ${k} expected`);
    tensors[h[1]] = { ne, values };
  }
  return tensors;
}

async function evalCallback(path, prompt) {
  const { stdout, stderr } = await promisify(execFile)(llamaEvalCallback, ['-m', path, '-p', prompt, '-c', '64', '-t', '2'], { maxBuffer: 1 << 30 });
  return parseEvalCallback(stdout + stderr, /^ffn_moe_(topk|weights_norm|down|down_scaled)-[01]$/);
}

describe('calibrate(): per-expert statistics against llama.cpp peers', () => {
  test('tokens routed to each expert equal llama-imatrix\'s per-expert counts', async () => {
    const path = await fixture('llama', { layers: 3 });
    const model = await loadModel(path);
    opened.push(model);
    const peerFile = join(dir, 'prune-stats.imatrix.gguf');
    await runPeer(llamaImatrix, ['-m', path, '-f', textFile, '-c', '64', '-b', '256', '-t', '2', '--chunks', '6', '-o', peerFile, '--no-ppl']);
    const peer = await readImatrix(peerFile);
    // computing all 8 experts (k > n) must not change which n the model routes to
    const p = await calibrate(model, { file: textFile, contextSize: 64, batchSize: 256, threads: 2, chunks: 6, experts: 8 });
    assert.equal(p.data.version, 3);
    // llama.cpp computes the last layer only for the tokens whose logits are asked for: the scored
    // second half of each chunk in a perplexity pass (llama-imatrix asks for all of them)
    const last = p.data.layers.at(-1);
    assert.equal(last.layer, 2);
    assert.equal(last.tokens, 6 * 32);
    assert.equal(last.expertTokens.reduce((a, b) => a + b, 0), 6 * 32 * 2);
    for (const l of p.data.layers.slice(0, -1)) {
      const e = peer.entries.find((x) => x.name === `blk.${l.layer}.ffn_down_exps.weight`);
      assert.ok(e, `layer ${l.layer} in the peer's file`);
      assert.deepEqual(l.expertTokens, Array.from(e.counts), `layer ${l.layer}`);
      assert.equal(l.expertTokens.reduce((a, b) => a + b, 0), l.tokens * 2);
    }
  });

  test('mean weight, mean ‖output‖ and REAP equal a recomputation from llama-eval-callback\'s tensors', async () => {
    assert.ok(existsSync(llamaEvalCallback), `${llamaEvalCallback} is missing: run \`npm run build:peers\``);
    // 4-dim embeddings and 8 tokens: every value printed except tokens 3 and 4 of the 8, which a
    // second run on the first 5 tokens prints (causal attention: a prefix computes the same values)
    // (3 layers: llama-eval-callback computes the last one for the last token only, so layers 0 and 1 are compared)
    const path = await fixture('llama', { layers: 3, embeddingLength: 4, heads: 1, headsKv: 1, feedForwardLength: 8 });
    const model = await loadModel(path);
    opened.push(model);
    // llama-eval-callback tokenizes the prompt as moe-eval does (BOS first): 8 and 5 tokens
    const tokens = Array.from(await model.tokenize('the cat sat on the mat and'));
    assert.equal(tokens.length, 8);
    assert.deepEqual(Array.from(await model.tokenize('the cat sat on')), tokens.slice(0, 5));
    const full = { tensors: await evalCallback(path, 'the cat sat on the mat and') };
    const prefix = { tensors: await evalCallback(path, 'the cat sat on') };
    assert.deepEqual(full.tensors['ffn_moe_topk-0'].ne, [2, 8, 1, 1]);
    assert.deepEqual(prefix.tensors['ffn_moe_topk-0'].ne, [2, 5, 1, 1]);

    const p = await calibrate(model, { tokens: [...tokens, ...tokens], contextSize: 8, batchSize: 8, threads: 2, chunks: 1, experts: 2 });
    assert.equal(p.data.layers.length, 3);
    const T = 8;
    for (const l of p.data.layers.slice(0, -1)) {
      const get = (name, idx, t) => {
        const src = t === 3 || t === 4 ? prefix : full;
        const tensor = src.tensors[`${name}-${l.layer}`];
        assert.ok(tensor, `${name}-${l.layer} printed`);
        const v = tensor.values.get(idx(t).join(','));
        assert.ok(Number.isFinite(v), `${name}-${l.layer} at token ${t}`);
        return v;
      };
      const count = new Array(8).fill(0);
      const wSum = new Array(8).fill(0);
      const nSum = new Array(8).fill(0);
      const rSum = new Array(8).fill(0);
      for (let t = 0; t < T; t++) {
        for (let s = 0; s < 2; s++) {
          const id = get('ffn_moe_topk', () => [s, t, 0, 0], t);
          // ffn_moe_weights_norm is [k, T] here ([1, k, T] once reshaped, a tensor without a name of its own)
          const w = get('ffn_moe_weights_norm', () => (full.tensors[`ffn_moe_weights_norm-${l.layer}`].ne[0] === 1 ? [0, s, t, 0] : [s, t, 0, 0]), t);
          let sq = 0;
          // the experts' output: build_moe_ffn renames it ffn_moe_down_scaled where the model has per-expert output scales (this fixture does)
          const down = full.tensors[`ffn_moe_down_scaled-${l.layer}`] ? 'ffn_moe_down_scaled' : 'ffn_moe_down';
          for (let e = 0; e < 4; e++) sq += get(down, () => [e, s, t, 0], t) ** 2;
          const norm = Math.sqrt(sq);
          count[id]++;
          wSum[id] += w;
          nSum[id] += norm;
          rSum[id] += w * norm;
        }
      }
      assert.deepEqual(l.expertTokens, count, `layer ${l.layer} tokens per expert`);
      const close = (a, b, what) => assert.ok(Math.abs(a - b) <= 2e-3 * Math.max(Math.abs(b), 1e-2), `${what}: ${a} vs ${b}`);
      for (let j = 0; j < 8; j++) {
        const c = count[j];
        close(l.meanWeight[j], c ? wSum[j] / c : 0, `layer ${l.layer} expert ${j} mean weight`);
        close(l.meanOutputNorm[j], c ? nSum[j] / c : 0, `layer ${l.layer} expert ${j} mean ‖y‖`);
        close(l.reap[j], c ? rSum[j] / c : 0, `layer ${l.layer} expert ${j} REAP`);
      }
      assert.ok(l.reap.some((x) => x > 0.01), `REAP values large enough to check: ${l.reap}`);
    }
    // coverage: 8 tokens cannot give 16 to any expert
    const cov = p.coverage();
    assert.equal(cov.minTokens, 16);
    assert.equal(cov.below.length, 24);
    assert.deepEqual(p.data.coverage, cov);
    assert.deepEqual(p.coverage(3).below.map((x) => x.tokens), p.data.layers.flatMap((l) => l.expertTokens.filter((t) => t < 3)));
  });

  test('profiles of versions 1 and 2 still load (without per-expert statistics); version 3 round-trips', async () => {
    const model = await loadModel(await fixture('llama'));
    opened.push(model);
    const p = await calibrate(model, { file: textFile, contextSize: 64, batchSize: 256, threads: 2, chunks: 2, experts: 2 });
    const file = join(dir, 'v3.profile.json');
    await p.save(file);
    const back = await RoutingProfile.load(file);
    assert.deepEqual(back.data, JSON.parse(JSON.stringify(p.data)));
    assert.equal(back.hasExpertStats, true);
    const v2 = { ...p.data, version: 2, coverage: undefined, layers: p.data.layers.map(({ expertTokens, meanWeight, meanOutputNorm, reap, ...rest }) => rest) };
    const old = new RoutingProfile(JSON.parse(JSON.stringify(v2)));
    assert.equal(old.hasExpertStats, false);
    assert.equal(old.scaleFor(0, 2), p.scaleFor(0, 2));
    const v1 = { ...v2, version: 1, model: { ...v2.model, experts: 8, expertCount: undefined } };
    assert.equal(new RoutingProfile(JSON.parse(JSON.stringify(v1))).expertCount, 8);
  });
});
