// Only the files the caller names are read or written; nothing reaches the network; no shell.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { evaluate, loadModel, sweep } from '../dist/index.js';
import { fixture, root, sampleText } from './helpers/fixtures.mjs';

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('security', () => {
  test('the library source spawns no process and opens no socket (RPC goes through ggml, to servers the caller names)', () => {
    for (const file of walk(join(root, 'src'))) {
      const text = readFileSync(file, 'utf8');
      assert.doesNotMatch(text, /child_process|node:net|node:http|node:https|node:dgram|\bfetch\(|WebSocket/, file);
    }
  });

  test('an evaluation and a sweep write exactly the files they were given, nowhere else', async () => {
    const work = mkdtempSync(join(tmpdir(), 'moe-eval-sec-'));
    // nothing new next to it in the temp folder either (top level: where a stray temp file would go)
    const before = new Set(readdirSync(tmpdir()));
    const cwd = process.cwd();
    process.chdir(work);
    try {
      const model = await loadModel(await fixture('llama'));
      await evaluate(model, { text: sampleText(), contextSize: 64, threads: 2, chunks: 2, saveReference: join(work, 'base.kld') });
      await sweep(model, { grid: { experts: [1, 2] }, text: sampleText(), out: join(work, 'sweep.jsonl'), contextSize: 64, threads: 2, chunks: 2, reference: 'default' });
      await model.dispose();
    } finally {
      process.chdir(cwd);
    }
    assert.deepEqual(readdirSync(work).sort(), ['base.kld', 'sweep.jsonl', 'sweep.jsonl.base.kld']);
    const added = readdirSync(tmpdir()).filter((f) => !before.has(f));
    assert.deepEqual(added, [], 'files appeared outside the named ones');
  });
});
