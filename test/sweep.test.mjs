// sweep(): one model, one context, a grid of routings; JSONL results; resume after a kill -9.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { gridPoints, sweep } from '../dist/index.js';
import { dir, fixture, root, sampleText } from './helpers/fixtures.mjs';

const lines = (path) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

describe('sweep()', () => {
  test('grid points are the cartesian product', () => {
    assert.equal(gridPoints({ experts: [1, 2, 3], expertScale: ['none', 'uniform'], gateScale: [1, 2] }).length, 12);
    assert.throws(() => gridPoints({ expert: [1] }), /Did you mean 'experts'/);
    assert.throws(() => gridPoints({ experts: [] }), TypeError);
  });

  test('a killed and resumed sweep equals an uninterrupted one, with no point lost or duplicated', async () => {
    const model = await fixture('llama');
    const text = join(dir, 'sweep.txt');
    writeFileSync(text, sampleText());
    const full = join(dir, 'sweep-full.jsonl');
    const cut = join(dir, 'sweep-cut.jsonl');
    rmSync(full, { force: true });
    rmSync(cut, { force: true });
    const script = join(root, 'test', 'helpers', 'run-sweep.mjs');

    const run = (out, killAfterPoints) =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [script, model, text, out], { stdio: ['ignore', 'pipe', 'pipe'] });
        let seen = 0;
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.stdout.on('data', (d) => {
          seen += String(d).split('\n').filter((l) => l.startsWith('point')).length;
          if (killAfterPoints && seen >= killAfterPoints) child.kill('SIGKILL');
        });
        child.on('exit', (code, sig) => (code === 0 || sig === 'SIGKILL' ? resolve({ code, sig }) : reject(new Error(`sweep exited ${code}: ${stderr}`))));
      });

    await run(full);
    const reference = lines(full);
    assert.equal(reference.length, 8);

    const killed = await run(cut, 3);
    assert.equal(killed.sig, 'SIGKILL');
    const partial = lines(cut).length;
    assert.ok(partial >= 3 && partial < 8, `${partial} points before the kill`);
    appendFileSync(cut, '{"key":"torn'); // a line torn mid-write, as a crash could leave it
    await run(cut);
    const resumed = lines(cut);
    assert.equal(resumed.length, 8, 'every point exactly once');
    assert.equal(new Set(resumed.map((r) => r.key)).size, 8);
    const byKey = new Map(reference.map((r) => [r.key, r]));
    for (const r of resumed) {
      const ref = byKey.get(r.key);
      assert.ok(ref, `unexpected point ${r.key}`);
      assert.equal(r.perplexity, ref.perplexity);
      assert.equal(r.kldMean, ref.kldMean);
    }
    // KLD against the model's own routing: zero at the default point, positive elsewhere
    const def = resumed.find((r) => r.routing === 'default');
    assert.ok(Math.abs(def.kldMean) < 1e-4);
    assert.ok(resumed.filter((r) => r.experts[0] !== 2).every((r) => r.kldMean > 0.001));
  });

  test('running the same sweep again evaluates nothing', async () => {
    const model = await fixture('llama');
    const out = join(dir, 'sweep-again.jsonl');
    const opts = { grid: { experts: [1, 2] }, text: sampleText(), out, contextSize: 64, batchSize: 128, threads: 2, chunks: 4 };
    const a = await sweep(model, opts);
    const b = await sweep(model, opts);
    assert.equal(a.evaluated, 2);
    assert.equal(b.evaluated, 0);
    assert.equal(b.resumed, 2);
    assert.deepEqual(b.rows.map((r) => r.perplexity), a.rows.map((r) => r.perplexity));
  });
});

describe('sweep() abort', () => {
  test('a signal stops the sweep within the current point; the file holds only whole lines', async () => {
    const model = await fixture('llama');
    const out = join(dir, 'sweep-abort.jsonl');
    rmSync(out, { force: true });
    const ac = new AbortController();
    const opts = { grid: { experts: [1, 2, 3, 4] }, text: sampleText(), out, contextSize: 64, batchSize: 64, threads: 2, chunks: 6, signal: ac.signal };
    await assert.rejects(
      sweep(model, { ...opts, onProgress: (p) => p.point === 2 && p.chunksDone === 1 && ac.abort(new Error('stop')) }),
      { message: 'stop' },
    );
    const text = readFileSync(out, 'utf8');
    assert.ok(text.endsWith('\n'));
    assert.equal(lines(out).length, 1, 'the first point only');
    const rest = await sweep(model, { ...opts, signal: undefined });
    assert.equal(rest.resumed, 1);
    assert.equal(rest.evaluated, 3);
  });
});
