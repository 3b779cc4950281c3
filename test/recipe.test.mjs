// Quantization recipes in compare(): type × importance matrix × tensor overrides, one row each.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { compare, parseRecipe } from '../dist/index.js';
import { dir, fixture, root, sampleText } from './helpers/fixtures.mjs';
import { llamaImatrix, llamaQuantize, runPeer } from './helpers/peers.mjs';

const sha = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('recipes', () => {
  test('parseRecipe(): TYPE[+imatrix[=FILE]][, REGEX=TYPE…][, pure]', () => {
    assert.deepEqual(parseRecipe('q4_k_m'), { type: 'q4_k_m', label: 'q4_k_m' });
    assert.deepEqual(parseRecipe('iq2_xxs+imatrix, ffn_down_exps=q4_k, attn=q6_k, pure'), {
      type: 'iq2_xxs', imatrix: true, tensorTypes: ['ffn_down_exps=q4_k', 'attn=q6_k'], pure: true, label: 'iq2_xxs+imatrix, ffn_down_exps=q4_k, attn=q6_k, pure',
    });
    assert.equal(parseRecipe('iq3_s+imatrix=/x/m.imatrix.gguf').imatrix, '/x/m.imatrix.gguf');
    assert.throws(() => parseRecipe('iq2_xxs'), (e) => e instanceof RangeError && /imatrix/.test(e.message));
    assert.throws(() => parseRecipe('q4_0+imat'), RangeError);
    assert.throws(() => parseRecipe('q4_0, attn=q9'), RangeError);
    assert.throws(() => parseRecipe('q9_k'), RangeError);
  });

  test('compare() makes one row per recipe; an imatrix recipe is what llama-imatrix + llama-quantize make', async () => {
    const model = await fixture('llama', { embeddingLength: 256, feedForwardLength: 256 });
    const textFile = join(root, 'vendor', 'llama.cpp', 'README.md');
    const cacheDir = join(dir, 'recipe-cache');
    const calibration = { file: textFile, contextSize: 64, batchSize: 256, threads: 2, chunks: 4 };
    await assert.rejects(compare({ models: [model], quantize: ['iq2_xxs+imatrix'], text: sampleText() }), /calibration/);
    const r = await compare({
      models: [model],
      quantize: ['q4_0', 'iq2_xxs+imatrix', 'iq2_xxs+imatrix, ffn_down=q8_0'],
      calibration,
      cacheDir,
      text: sampleText(),
      contextSize: 64,
      batchSize: 128,
      threads: 2,
      chunks: 4,
    });
    assert.deepEqual(r.rows.map((x) => x.model), [model.split('/').pop(), model.split('/').pop().replace(/\.gguf$/, '.q4_0.gguf'), 'iq2_xxs+imatrix', 'iq2_xxs+imatrix, ffn_down=q8_0']);
    const [, q4, iq2, iq2o] = r.rows;
    assert.ok(iq2.kldMean > q4.kldMean, `KLD iq2_xxs ${iq2.kldMean}, q4_0 ${q4.kldMean}`);
    assert.ok(iq2o.bitsPerWeight > iq2.bitsPerWeight && iq2o.kldMean < iq2.kldMean, `${iq2o.bitsPerWeight} bpw ${iq2o.kldMean} vs ${iq2.bitsPerWeight} bpw ${iq2.kldMean}`);

    // the same matrix and file from llama.cpp's own tools
    const imatrixFile = readdirSync(cacheDir).find((f) => f.includes('.imatrix-'));
    const peerImatrix = join(dir, 'recipe-peer.imatrix.gguf');
    await runPeer(llamaImatrix, ['-m', model, '-f', textFile, '-c', '64', '-b', '256', '-t', '2', '--chunks', '4', '-o', peerImatrix, '--no-ppl']);
    assert.equal(sha(join(cacheDir, imatrixFile)), sha(peerImatrix));
    const iq2File = readdirSync(cacheDir).filter((f) => f.includes('.iq2_xxs-'));
    assert.equal(iq2File.length, 2);
    const peerOut = join(dir, 'recipe-peer.iq2_xxs.gguf');
    // quantize.imatrix.file records the path given: give llama-quantize the cached one
    await runPeer(llamaQuantize, ['--imatrix', join(cacheDir, imatrixFile), model, peerOut, 'iq2_xxs', '2']);
    assert.ok(iq2File.some((f) => sha(join(cacheDir, f)) === sha(peerOut)));
  });
});
