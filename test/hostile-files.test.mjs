// Hostile files: every case is a rejected promise with a typed error and a stable code; the process
// survives. A seeded fuzz over valid fixtures of several architectures (scripts/fuzz-gguf.mjs runs more).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { MoeEvalError, createRandomModel, defaultVocabFile, evaluate, loadModel } from '../dist/index.js';
import { ARCHS, dir, fixture, rowNll, sampleText } from './helpers/fixtures.mjs';
import { mutate } from './helpers/gguf-fuzz.mjs';

const CASES = Number(process.env.MOE_EVAL_FUZZ_CASES ?? 2000);
const SEED = Number(process.env.MOE_EVAL_FUZZ_SEED ?? 20261128);
const CODES = new Set(['ERR_MODEL_LOAD', 'ERR_GGUF', 'ERR_FILE', 'ERR_NO_TOKENIZER', 'ERR_TOKENIZE']);

describe('hostile GGUF files', () => {
  test(`${CASES} seeded mutations of valid files: rejected with a typed error, or loaded and usable`, async () => {
    const sources = await Promise.all(['llama', 'qwen2moe', 'deepseek2'].map((a) => fixture(a)));
    const valid = sources.map((p) => readFileSync(p));
    const path = join(dir, 'fuzz.gguf');
    const byCode = {};
    let loaded = 0;
    for (let i = 0; i < CASES; i++) {
      const { name, data } = mutate(valid[i % valid.length], SEED, i);
      writeFileSync(path, data);
      try {
        const m = await loadModel(path);
        loaded++;
        // a mutation that still loads must also be usable, or fail cleanly
        await m.tokenize('In the beginning').catch((e) => assert.ok(e instanceof MoeEvalError && CODES.has(e.code), `${name}: ${e}`));
        await m.dispose();
      } catch (e) {
        assert.ok(e instanceof MoeEvalError, `case ${i} (${name}): ${e}`);
        assert.ok(CODES.has(e.code), `case ${i} (${name}): unexpected code ${e.code}`);
        byCode[e.code] = (byCode[e.code] ?? 0) + 1;
      }
    }
    // the figure CI prints on every run
    console.log(`hostile GGUF fuzz: ${CASES} cases tried, ${CASES} survived (${loaded} still loaded, rejected: ${JSON.stringify(byCode)}), seed ${SEED}`);
  });

  test('not a file, empty, not GGUF, a FIFO, a directory', async () => {
    await assert.rejects(loadModel(join(dir, 'absent.gguf')), { code: 'ERR_FILE' });
    mkdirSync(join(dir, 'folder.gguf'), { recursive: true });
    await assert.rejects(loadModel(join(dir, 'folder.gguf')), { code: 'ERR_FILE' });
    writeFileSync(join(dir, 'empty.gguf'), '');
    await assert.rejects(loadModel(join(dir, 'empty.gguf')), { code: 'ERR_GGUF' });
    writeFileSync(join(dir, 'pdf.gguf'), '%PDF-1.7 not a model');
    await assert.rejects(loadModel(join(dir, 'pdf.gguf')), { code: 'ERR_GGUF' });
    const fifo = join(dir, 'fifo.gguf');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(loadModel(fifo), { code: 'ERR_FILE', message: /non-regular file/ });
  });

  test('a model without a usable tokenizer: tokenizing is an error, not an abort', async () => {
    // llama.cpp's own tokenizer asserts on a "no_vocab" model; moe-eval checks first
    const noVocab = join(dir, 'no-vocab-source.gguf');
    writeFileSync(noVocab, readFileSync(defaultVocabFile()));
    const path = join(dir, 'no-vocab.gguf');
    const { native } = await import('../dist/native.js');
    await createRandomModel(path, { arch: 'llama', layers: 1, embeddingLength: 64, heads: 4, headsKv: 2, feedForwardLength: 64, expertCount: 4, expertsUsed: 2 });
    await native().rewriteGguf(path, path + '.nv', { kv: [{ key: 'tokenizer.ggml.model', type: 'str', value: 'no_vocab' }] });
    const m = await loadModel(path + '.nv');
    await assert.rejects(m.tokenize('hello'), { code: 'ERR_NO_TOKENIZER' });
    await assert.rejects(evaluate(m, { text: sampleText(), contextSize: 64, threads: 2 }), { code: 'ERR_NO_TOKENIZER' });
    await m.dispose();
  });

  test("a model written like llama.cpp's tests/test-llama-archs.cpp (no_vocab, every token string empty) loads and evaluates from tokens", async () => {
    const path = join(dir, 'test-llama-archs-style.gguf');
    await createRandomModel(path, { ...ARCHS.llama, noVocab: 128, seed: 3 });
    const m = await loadModel(path);
    assert.equal(m.info.vocabSize, 128);
    await assert.rejects(m.tokenize('hello'), {
      code: 'ERR_NO_TOKENIZER',
      message: 'the model has no tokenizer (tokenizer.ggml.model is "no_vocab"): pass tokens instead of text',
    });
    await assert.rejects(evaluate(m, { text: sampleText(), contextSize: 32, threads: 2 }), { code: 'ERR_NO_TOKENIZER' });
    // perplexity from the logits in double precision, as llama-perplexity scores (second half of each chunk;
    // no BOS: a no_vocab model has none)
    const contextSize = 32;
    const chunks = 3;
    let s = 12345;
    const tokens = Int32Array.from({ length: contextSize * chunks }, () => (s = (s * 1103515245 + 12345) % 2 ** 31) % 128);
    const r = await evaluate(m, { tokens, contextSize, batchSize: contextSize, threads: 2, chunks });
    const ctx = await m.createContext({ contextSize, batchSize: contextSize, threads: 2 });
    let nll = 0;
    let count = 0;
    for (let c = 0; c < chunks; c++) {
      const chunk = tokens.subarray(c * contextSize, (c + 1) * contextSize);
      const logits = await ctx.logits(chunk);
      for (let j = contextSize / 2; j < contextSize - 1; j++) {
        const row = logits.subarray(j * 128, (j + 1) * 128);
        nll += rowNll(row, chunk[j + 1]);
        count++;
      }
    }
    await ctx.dispose();
    const reference = Math.exp(nll / count);
    assert.ok(Math.abs(r.perplexity / reference - 1) < 1e-6, `perplexity ${r.perplexity}, from the logits ${reference}`);
    await m.dispose();
  });

  test('a dense model given MoE options', async () => {
    const path = join(dir, 'dense.gguf');
    await createRandomModel(path, { arch: 'llama', layers: 1, embeddingLength: 64, heads: 4, headsKv: 2, feedForwardLength: 64, expertCount: 0, expertsUsed: 0 });
    const m = await loadModel(path);
    assert.equal(m.info.expertCount, 0);
    await assert.rejects(evaluate(m, { text: sampleText(), contextSize: 64, threads: 2, routing: { experts: 2 } }), { name: 'RangeError', message: /need a Mixture-of-Experts model/ });
    const r = await evaluate(m, { text: sampleText(), contextSize: 64, threads: 2, chunks: 2 });
    assert.ok(r.perplexity > 1);
    await m.dispose();
  });
});
