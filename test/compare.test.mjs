// compare(): quantization levels × routings against the f32 original, and the report it feeds.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { compare, quantizeModel, writeReport } from '../dist/index.js';
import { dir, fixture, sampleText } from './helpers/fixtures.mjs';

describe('compare()', () => {
  test('quantized files are further from the f32 original the fewer bits they have', async () => {
    // k-quants need rows that are multiples of 256
    const model = await fixture('llama', { embeddingLength: 256, feedForwardLength: 256 });
    const events = [];
    const r = await compare({
      models: [model],
      quantize: ['q8_0', 'q4_0'],
      routings: [{}, { experts: 3, expertScale: 'uniform' }],
      cacheDir: join(dir, 'cache'),
      text: sampleText(),
      contextSize: 64,
      batchSize: 128,
      threads: 2,
      chunks: 4,
      onEvent: (e) => events.push(e.kind),
    });
    assert.equal(r.rows.length, 6);
    const row = (type, routing) => r.rows.find((x) => x.fileType.startsWith(type) && x.routing === routing);
    assert.equal(row('F32', 'default').kldMean, 0);
    assert.equal(row('F32', 'default').sameTopPercent, 100);
    const q8 = row('Q8_0', 'default');
    const q4 = row('Q4_0', 'default');
    assert.ok(q8.kldMean > 0 && q4.kldMean > q8.kldMean, `KLD q8 ${q8.kldMean}, q4 ${q4.kldMean}`);
    assert.ok(q8.bitsPerWeight < 9 && q4.bitsPerWeight < q8.bitsPerWeight);
    assert.ok(row('F32', 'experts=3 expert-scale=uniform').kldMean > 0);
    assert.ok(events.includes('quantize') && events.includes('row'));
    assert.ok(existsSync(r.referenceFile));

    const out = join(dir, 'report');
    const written = await writeReport(out, r);
    const html = readFileSync(written.html, 'utf8');
    assert.match(html, /Q4_0/);
    assert.match(html, /<svg/);
  });

  test('quantizeModel reports progress and refuses unknown or imatrix-only types', async () => {
    const model = await fixture('llama', { embeddingLength: 256, feedForwardLength: 256 });
    const seen = [];
    await quantizeModel(model, join(dir, 'q8.gguf'), { type: 'Q8_0', threads: 2, onProgress: (p) => seen.push(p) });
    assert.ok(seen.length > 5 && seen.at(-1) === 1);
    await assert.rejects(quantizeModel(model, join(dir, 'x.gguf'), { type: 'q9_9' }), RangeError);
    await assert.rejects(quantizeModel(model, join(dir, 'x.gguf'), { type: 'iq2_xxs' }), /importance matrix/);
  });
});
