// Only the files the caller names are read or written; nothing reaches the network; no shell.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { dir, fixture, root } from './helpers/fixtures.mjs';

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
    // in a child process whose temp folder is private to this test: other processes on the machine
    // (compilers, other test runs) write to the shared one, so only a private one can show a stray file
    const work = mkdtempSync(join(dir, 'sec-work-'));
    const tmp = mkdtempSync(join(dir, 'sec-tmp-'));
    const script = `
      import { evaluate, loadModel, sweep } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
      import { readFileSync } from 'node:fs';
      const text = readFileSync(${JSON.stringify(join(root, 'vendor', 'llama.cpp', 'README.md'))}, 'utf8');
      const model = await loadModel(${JSON.stringify(await fixture('llama'))});
      await evaluate(model, { text, contextSize: 64, threads: 2, chunks: 2, saveReference: 'base.kld' });
      await sweep(model, { grid: { experts: [1, 2] }, text, out: 'sweep.jsonl', contextSize: 64, threads: 2, chunks: 2, reference: 'default' });
      await model.dispose();
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: work, env: { ...process.env, TMPDIR: tmp, TMP: tmp, TEMP: tmp }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(work).sort(), ['base.kld', 'sweep.jsonl', 'sweep.jsonl.base.kld']);
    assert.deepEqual(readdirSync(tmp), [], 'files appeared in the temp folder');
  });
});
