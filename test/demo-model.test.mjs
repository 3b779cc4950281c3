// The bundled demo model: the committed file is the one the card describes, llama.cpp loads it, and
// the quality bar holds (routing matters in this model).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { calibrate, evaluate, loadModel } from '../dist/index.js';
import { root } from './helpers/fixtures.mjs';

const dirDemo = join(root, 'models', 'demo');
const modelPath = join(dirDemo, 'moe-demo.gguf');
const textPath = join(dirDemo, 'heldout.txt');
const log = JSON.parse(readFileSync(join(dirDemo, 'train-log.json'), 'utf8'));

let model;
before(async () => {
  model = await loadModel(modelPath);
});
after(() => model.dispose());

describe('demo model', () => {
  test('the committed file matches its checksum and metadata', () => {
    const sum = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
    const recorded = readFileSync(join(dirDemo, 'checksums'), 'utf8').split(/\s+/)[0];
    assert.equal(sum, recorded);
    const i = model.info;
    assert.equal(i.architecture, 'llama');
    assert.equal(i.expertCount, 8);
    assert.equal(i.expertsUsed, 2);
    assert.equal(i.gating, 'softmax');
    assert.equal(i.renormalized, true);
    assert.ok(readFileSync(modelPath).length <= 21 * 2 ** 20, 'at most ~20 MB');
  });

  let two;
  test("moe-eval's perplexity equals the training script's PyTorch one (≤ 1e-3 relative)", async () => {
    const e = log.eval.ctx256;
    two = await evaluate(model, { file: textPath, contextSize: 256, batchSize: 1024, threads: 2 });
    assert.equal(two.chunks.length, e.chunks);
    assert.equal(two.scoredTokens, e.scored_tokens);
    assert.ok(Math.abs(two.perplexity / e.ppl_top2 - 1) < 1e-3, `moe-eval ${two.perplexity} vs PyTorch ${e.ppl_top2}`);
    assert.ok(two.perplexity < e.unigram_ppl / 3, `well below the unigram model's ${e.unigram_ppl}`);
  });

  test('routing matters: one expert costs ≥ 5 %, and every expert is used (≥ 2 % of tokens) in every layer', async () => {
    const opts = { file: textPath, contextSize: 256, batchSize: 1024, threads: 2 };
    const one = await evaluate(model, { ...opts, routing: { experts: 1 } });
    assert.ok(Math.abs(one.perplexity / log.eval.ctx256.ppl_top1 - 1) < 1e-3, `top-1: moe-eval ${one.perplexity} vs PyTorch ${log.eval.ctx256.ppl_top1}`);
    assert.ok(one.perplexity >= 1.05 * two.perplexity, `top-1 ${one.perplexity} vs top-2 ${two.perplexity}`);
    const p = await calibrate(model, { ...opts, chunks: 32, experts: 2 });
    for (const l of p.data.layers) {
      const share = l.selectionFrequency.map((f) => f / 2);
      assert.ok(Math.min(...share) >= 0.02, `layer ${l.layer}: expert shares ${share.map((x) => x.toFixed(3))}`);
    }
  });
});
