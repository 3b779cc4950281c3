// sweep(): one model, one context, a grid of routings; JSONL results; resume after a kill -9.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { gridPoints, sweep } from '../dist/index.js';
import { dir, fixture, root, sampleText } from './helpers/fixtures.mjs';

// the points of a results file (its first line is the header)
const lines = (path) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.format !== 'moe-eval-results');

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
    // 4 experts counts × 2 scale rules, but uniform at the trained count (2) is the default routing: 7
    assert.equal(reference.length, 7);

    const killed = await run(cut, 3);
    assert.equal(killed.sig, 'SIGKILL');
    const partial = lines(cut).length;
    assert.ok(partial >= 3 && partial < 7, `${partial} points before the kill`);
    appendFileSync(cut, '{"key":"torn'); // a line torn mid-write, as a crash could leave it
    await run(cut);
    const resumed = lines(cut);
    assert.equal(resumed.length, 7, 'every point exactly once');
    assert.equal(new Set(resumed.map((r) => r.key)).size, 7);
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

describe('sweep() results files', () => {
  const opts = async (out) => ({ grid: { experts: [1, 2] }, text: sampleText(), out, contextSize: 64, batchSize: 128, threads: 2, chunks: 2 });

  test('a file that is not a moe-eval results file is refused, not appended to', async () => {
    const model = await fixture('llama');
    const out = join(dir, 'foreign.jsonl');
    writeFileSync(out, '{"some":"other tool"}\n');
    await assert.rejects(sweep(model, await opts(out)), { code: 'ERR_FILE', message: /not a moe-eval results file/ });
    assert.equal(readFileSync(out, 'utf8'), '{"some":"other tool"}\n');
  });

  test('results of another text or settings are refused', async () => {
    const model = await fixture('llama');
    const out = join(dir, 'other-text.jsonl');
    rmSync(out, { force: true });
    await sweep(model, await opts(out));
    const before = readFileSync(out, 'utf8');
    await assert.rejects(sweep(model, { ...(await opts(out)), text: sampleText().slice(500) }), { code: 'ERR_FILE', message: /another model, text or settings/ });
    await assert.rejects(sweep(model, { ...(await opts(out)), contextSize: 128 }), { code: 'ERR_FILE', message: /another model, text or settings/ });
    assert.equal(readFileSync(out, 'utf8'), before);
  });

  test('a file another live process is writing is refused; a lock left by a dead process is taken over', async () => {
    const model = await fixture('llama');
    const out = join(dir, 'locked.jsonl');
    rmSync(out, { force: true });
    writeFileSync(`${out}.lock`, `${process.ppid}\n`); // a live process that is not this one
    await assert.rejects(sweep(model, await opts(out)), { code: 'ERR_FILE', message: new RegExp(`being written by another moe-eval process \\(pid ${process.ppid}`) });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(`${out}.lock`, `${dead.stdout}\n`);
    const r = await sweep(model, await opts(out));
    assert.equal(r.evaluated, 2);
    assert.ok(!existsSync(`${out}.lock`), 'the lock is removed when the sweep ends');
  });

  test('points that resolve to the same routing are evaluated once', async () => {
    const model = await fixture('llama');
    const out = join(dir, 'dupes.jsonl');
    rmSync(out, { force: true });
    const r = await sweep(model, { ...(await opts(out)), grid: undefined, routings: [{}, { experts: 2, expertScale: 'uniform' }, { experts: '2' }, { experts: 1 }] });
    assert.equal(r.evaluated, 2);
    assert.deepEqual(r.duplicates.map((d) => d.sameAs), ['default', 'default']);
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
