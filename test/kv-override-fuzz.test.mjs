// kvOverrides (llama.cpp's --override-kv): each one takes effect or is refused with a typed error, and
// none ends the process. A seeded fuzz over the keys llama.cpp knows (src/llama-arch.cpp), with values
// of every type, on fixtures of several architectures; the loads run in a child process (this file
// with MOE_EVAL_KV_FUZZ_CHILD set) so that an abort is seen, not suffered, by the test runner.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MoeEvalError, evaluate, loadModel } from '../dist/index.js';
import { ARCHS, fixture, root, sampleText } from './helpers/fixtures.mjs';
import { layout, rng } from './helpers/gguf-fuzz.mjs';

const CASES = Number(process.env.MOE_EVAL_KV_FUZZ_CASES ?? 1200);
const SEED = Number(process.env.MOE_EVAL_KV_FUZZ_SEED ?? 20261129);
const FUZZ_ARCHS = ['llama', 'qwen2moe', 'deepseek2', 'gpt-oss', 'qwen3moe', 'olmoe', 'granitemoe'];
// what a load may end in besides success, and what using a loaded model may end in
const LOAD_CODES = new Set(['ERR_KV_OVERRIDE', 'ERR_MODEL_LOAD', 'ERR_GGUF']);
const USE_CODES = new Set(['ERR_NO_TOKENIZER', 'ERR_TOKENIZE', 'ERR_CONTEXT', 'ERR_DECODE', 'ERR_TEXT_TOO_SHORT', 'ERR_KV_OVERRIDE']);

/** Every metadata key name llama.cpp knows, "%s" standing for the architecture. */
function llamaCppKeys() {
  const src = readFileSync(join(root, 'vendor', 'llama.cpp', 'src', 'llama-arch.cpp'), 'utf8');
  return [...new Set([...src.matchAll(/\{\s*LLM_KV_\w+\s*,\s*"([^"]+)"\s*\}/g)].map((m) => m[1]))];
}

const OVERRIDE_TYPE = { 0: 'int', 1: 'int', 2: 'int', 3: 'int', 4: 'int', 5: 'int', 10: 'int', 11: 'int', 6: 'float', 12: 'float', 7: 'bool', 8: 'str' };

/** The scalar keys stored in a GGUF file, with the override type that matches each and, for u32 and f32, the value. */
function fileKeys(buf) {
  return layout(buf).kvs.flatMap(({ keyAt, typeAt, type }) => {
    const len = Number(buf.readBigUInt64LE(keyAt));
    const value = type === 4 ? buf.readUInt32LE(typeAt + 4) : type === 6 ? buf.readFloatLE(typeAt + 4) : undefined;
    return OVERRIDE_TYPE[type] ? [{ key: buf.toString('utf8', keyAt + 8, keyAt + 8 + len), type: OVERRIDE_TYPE[type], value }] : [];
  });
}

/** A value near the file's: what a user would try. */
function nearValue(r, type, v) {
  if (type === 'int') return Math.max(0, r.pick([v - 1, v + 1, v * 2, Math.floor(v / 2), v, 0, 1]));
  const x = r.pick([v * 2, v / 2, -v, v + 1, 0]);
  return Number.isFinite(x) ? x : 0;
}

function randomValue(r, type) {
  switch (type) {
    case 'int':
      return r.pick([0, -1, 1, 2, 3, 7, 8, 9, 2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 32 + 2, 2 ** 62, -(2 ** 62), r.int(16), r.int(1024), r.int(2 ** 20), -r.int(2 ** 20)]);
    case 'float':
      return r.pick([0, -1, 1, 0.5, -1e-30, 1e-45, 1e-300, 1e38, 3.5e38, 1e300, -1e300, r.next() * 10, -r.next() * 1e6]);
    case 'bool':
      return r.next() < 0.5;
    default: {
      const pick = r.int(6);
      if (pick === 0) return '';
      if (pick === 1) return 'x'.repeat(127);
      if (pick === 2) return r.pick(['llama', 'gpt2', 'no_vocab', 'none', 'bert', 't5', 'qwen2moe', 'deepseek2', 'yarn', 'linear', 'softmax', 'sigmoid']);
      return Array.from({ length: r.int(20) }, () => String.fromCharCode(32 + r.int(95))).join('');
    }
  }
}

/** Case i: an architecture and 1 to 3 overrides of distinct keys. */
function makeCase(i, keys, fileKeysByArch) {
  const r = rng(SEED + i);
  const arch = FUZZ_ARCHS[i % FUZZ_ARCHS.length];
  const inFile = fileKeysByArch[arch];
  const kvOverrides = [];
  const n = 1 + r.int(3);
  while (kvOverrides.length < n) {
    // mostly the file's own scalar keys with their own type (what gets past the type check), often with a
    // value near the file's; else any key llama.cpp knows, with any type
    const own = r.next() < 0.6 ? r.pick(inFile) : undefined;
    const key = own ? own.key : r.pick(keys).replace('%s', ARCHS[arch].arch);
    if (kvOverrides.some((kv) => kv.key === key)) continue;
    const type = own && r.next() < 0.8 ? own.type : r.pick(['int', 'int', 'float', 'bool', 'str']);
    const near = own && type === own.type && own.value !== undefined && r.next() < 0.5;
    kvOverrides.push({ key, type, value: near ? nearValue(r, type, own.value) : randomValue(r, type) });
  }
  return { i, arch, kvOverrides };
}

/** The child: tries case after case, one JSON line before and after each. */
async function child(first, count) {
  const keys = llamaCppKeys();
  const paths = {};
  const fileKeysByArch = {};
  for (const a of FUZZ_ARCHS) {
    paths[a] = await fixture(a);
    fileKeysByArch[a] = fileKeys(readFileSync(paths[a]));
  }
  const base = await loadModel(paths.llama);
  const tokens = (await base.tokenize(sampleText())).subarray(0, 64); // same 32,000-token vocabulary in every fixture
  await base.dispose();
  const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
  for (let i = first; i < first + count; i++) {
    const c = makeCase(i, keys, fileKeysByArch);
    out({ start: i, arch: c.arch, kvOverrides: c.kvOverrides });
    let model;
    try {
      model = await loadModel(paths[c.arch], { kvOverrides: c.kvOverrides });
    } catch (e) {
      out({ i, outcome: 'rejected', name: e.name, code: e.code, typed: (e instanceof MoeEvalError || e instanceof RangeError) && LOAD_CODES.has(e.code), message: e.message });
      continue;
    }
    const used = [];
    try {
      for (const step of [
        () => model.tokenize('In the beginning'),
        () => evaluate(model, { tokens, contextSize: 32, batchSize: 64, threads: 1, chunks: 2 }),
      ]) {
        try {
          await step();
          used.push('ok');
        } catch (e) {
          used.push(e.code ?? e.name);
          if (!(e instanceof MoeEvalError && USE_CODES.has(e.code))) throw e;
        }
      }
      out({ i, outcome: 'loaded', used, typed: true });
    } catch (e) {
      out({ i, outcome: 'loaded', used, typed: false, name: e.name, code: e.code, message: e.message });
    } finally {
      await model.dispose();
    }
  }
}

if (process.env.MOE_EVAL_KV_FUZZ_CHILD) {
  const [first, count] = process.env.MOE_EVAL_KV_FUZZ_CHILD.split(',').map(Number);
  await child(first, count);
} else {
  const { describe, test } = await import('node:test');

  /** Runs cases [first, first + count) in a child; resolves with its result lines and how it ended. */
  function runChild(first, count) {
    return new Promise((resolveRun) => {
      const p = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
        env: { ...process.env, MOE_EVAL_KV_FUZZ_CHILD: `${first},${count}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code, signal) => resolveRun({ lines: stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)), code, signal, stderr }));
    });
  }

  describe('kvOverrides', () => {
    /** The error loadModel() rejects with (the test fails if it resolves). */
    async function refusal(kvOverrides, name = 'llama') {
      const path = await fixture(name);
      try {
        const m = await loadModel(path, { kvOverrides });
        await m.dispose();
      } catch (e) {
        return e;
      }
      assert.fail(`loaded with ${JSON.stringify(kvOverrides)}`);
    }

    test("the issue's examples: expert_used_count 99 and 0 are refused, the process lives on", async () => {
      const e99 = await refusal([{ key: 'llama.expert_used_count', type: 'int', value: 99 }]);
      assert.ok(e99 instanceof RangeError);
      assert.equal(e99.code, 'ERR_KV_OVERRIDE');
      assert.equal(e99.message, "kvOverrides 'llama.expert_used_count=int:99': expected an integer in [1, 8] (the model has 8 experts) but received 99");
      const e0 = await refusal(['llama.expert_used_count=int:0']);
      assert.ok(e0 instanceof RangeError);
      assert.equal(e0.code, 'ERR_KV_OVERRIDE');
      assert.match(e0.message, /expected an integer in \[1, 8\] .* but received 0$/);
      // a count that contradicts the file's other counts names the override that does
      assert.match((await refusal(['llama.expert_count=int:1'])).message, /'llama.expert_count=int:1': expected 8, the file's value/);
      assert.match((await refusal(['deepseek2.expert_group_used_count=int:4'], 'deepseek2')).message, /expected an integer in \[1, 3\] \(the model has 4 expert groups\) but received 4/);
      assert.match((await refusal(['deepseek2.expert_group_count=int:3'], 'deepseek2')).message, /expected a divisor of the expert count \(the model has 8 experts\) but received 3/);
    });

    test('a type the key does not have, a key llama.cpp does not read, an array, a key given twice', async () => {
      for (const [kv, message] of [
        ['llama.expert_used_count=str:x', "kvOverrides 'llama.expert_used_count=str:x': expected type int (llama.expert_used_count is stored as u32 in this file) but received str"],
        ['llama.expert_used_count=float:2.5', /expected type int .* but received float$/],
        ['llama.rope.freq_base=int:5', /expected type float \(llama.rope.freq_base is stored as f32 in this file\) but received int$/],
        ['llama.foo=int:3', "kvOverrides 'llama.foo=int:3': llama.cpp does not read this key for a llama model"],
        ['qwen2moe.expert_count=int:8', /llama.cpp does not read this key for a llama model$/],
        // read by llama.cpp, absent from the file: llama.cpp's own type check decides (its warning becomes the refusal)
        ['llama.expert_group_count=str:x', /expected type uint32_t|expected type int/],
        ['llama.expert_used_count=int:4294967298', /expected an integer in \[0, 4294967295\]/],
        ['llama.attention.layer_norm_rms_epsilon=float:-1', /expected a number >= 0/],
        ['llama.rope.scaling.type=str:sideways', /expected none, linear, yarn or longrope/],
        ['llama.attention.head_count_kv=int:4', /expected 2, the file's value/],
        ['general.architecture=str:qwen2moe', /expected str:llama/],
        ['tokenizer.ggml.model=str:bert', /expected 'llama' \(the tokenizer the file's vocabulary was built for\) or 'no_vocab' but received 'bert'/],
      ]) {
        const e = await refusal([kv]);
        assert.ok(e instanceof RangeError, `${kv}: ${e}`);
        assert.equal(e.code, 'ERR_KV_OVERRIDE', `${kv}: ${e.message}`);
        if (typeof message === 'string') assert.equal(e.message, message);
        else assert.match(e.message, message, kv);
      }
      const arrays = await fileArrayKey();
      if (arrays) assert.match((await refusal([`${arrays}=int:1`])).message, /is an array of \d+ in this file/);
      await assert.rejects(loadModel(await fixture('llama'), { kvOverrides: ['llama.expert_used_count=int:3', 'llama.expert_used_count=int:4'] }),
        { name: 'RangeError', message: /Expected each key at most once for kvOverrides but received .llama.expert_used_count./ });
    });

    test('a valid override takes effect', async () => {
      const m = await loadModel(await fixture('llama'), { kvOverrides: ['llama.expert_used_count=int:3', 'general.name=str:renamed'] });
      assert.equal(m.info.expertsUsed, 3);
      assert.ok(m.info.moeLayers.every((l) => l.expertsUsed === 3));
      await m.dispose();
    });
  });

  /** A key the llama fixture stores as an array (the model saver writes some), if any. */
  async function fileArrayKey() {
    const buf = readFileSync(await fixture('llama'));
    const kv = layout(buf).kvs.find(({ type, keyAt }) => type === 9 && buf.toString('utf8', keyAt + 8, keyAt + 8 + Number(buf.readBigUInt64LE(keyAt))).startsWith('llama.'));
    return kv && buf.toString('utf8', kv.keyAt + 8, kv.keyAt + 8 + Number(buf.readBigUInt64LE(kv.keyAt)));
  }

  describe('kvOverrides fuzz', () => {
    test(`${CASES} seeded cases of 1-3 overrides on ${FUZZ_ARCHS.length} architectures: loaded and usable, or refused with a typed error`, async () => {
      const { lines, code, signal, stderr } = await runChild(0, CASES);
      const starts = lines.filter((l) => l.start !== undefined);
      const results = lines.filter((l) => l.outcome !== undefined);
      const last = starts.at(-1);
      assert.ok(signal === null && code === 0,
        `the child ended with ${signal ?? `exit code ${code}`} in case ${last?.start} (${last?.arch}: ${JSON.stringify(last?.kvOverrides)})\n${stderr.slice(-2000)}`);
      assert.equal(results.length, CASES);
      for (const r of results) {
        const c = starts.find((s) => s.start === r.i);
        assert.ok(r.typed, `case ${r.i} (${c.arch}: ${JSON.stringify(c.kvOverrides)}) ended in ${r.name} ${r.code}: ${r.message}`);
      }
      const byCode = {};
      for (const r of results.filter((x) => x.outcome === 'rejected')) byCode[r.code] = (byCode[r.code] ?? 0) + 1;
      const loaded = results.filter((r) => r.outcome === 'loaded');
      const evaluated = loaded.filter((r) => r.used[1] === 'ok').length;
      // the figure CI prints on every run
      console.log(`kvOverrides fuzz: ${CASES} cases tried, ${results.length} survived (${loaded.length} loaded, ${evaluated} of them evaluated; rejected: ${JSON.stringify(byCode)}), seed ${SEED}`);
    });
  });
}
