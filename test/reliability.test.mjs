// The Node process stays healthy: a responsive event loop, prompt exit without dispose(), no leaks.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, test } from 'node:test';

import { evaluate, loadModel } from '../dist/index.js';
import { fixture, root, sampleText } from './helpers/fixtures.mjs';

describe('process health', () => {
  test('the event loop stays responsive during load and evaluate (p99 delay ≤ 20 ms)', async () => {
    const path = await fixture('llama', { embeddingLength: 256, feedForwardLength: 256 });
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    const model = await loadModel(path);
    await evaluate(model, { text: sampleText(), contextSize: 128, batchSize: 512, threads: 2 });
    h.disable();
    await model.dispose();
    const p99 = h.percentile(99) / 1e6;
    console.log(`event loop delay during load + evaluate: p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms`);
    assert.ok(p99 <= 20, `p99 ${p99} ms`);
  });

  test('a script that never disposes still exits promptly', async () => {
    const path = await fixture('llama');
    const script = `
      import { loadModel, evaluate } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
      const m = await loadModel(${JSON.stringify(path)});
      const c = await m.createContext({ contextSize: 64, threads: 1 });
      const r = await evaluate(c, { text: ${JSON.stringify(sampleText().slice(0, 4000))} });
      console.log(r.perplexity > 0);`;
    const started = Date.now();
    const { code, out } = await new Promise((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('exit', (code) => resolve({ code, out }));
    });
    assert.equal(code, 0);
    assert.equal(out.trim(), 'true');
    assert.ok(Date.now() - started < 15000, `took ${Date.now() - started} ms`);
  });

  test('100 cycles of load → evaluate → dispose keep RSS within 50 MB of the first', async () => {
    const path = await fixture('llama');
    const text = sampleText().slice(0, 6000);
    let first = 0;
    let last = 0;
    for (let i = 0; i < 100; i++) {
      const m = await loadModel(path);
      await evaluate(m, { text, contextSize: 64, batchSize: 128, threads: 2, chunks: 2 });
      await m.dispose();
      if (i === 0) first = process.memoryUsage().rss;
      last = process.memoryUsage().rss;
    }
    const growth = (last - first) / 2 ** 20;
    console.log(`RSS after 1 cycle ${(first / 2 ** 20).toFixed(1)} MiB, after 100 ${(last / 2 ** 20).toFixed(1)} MiB (+${growth.toFixed(1)} MiB)`);
    assert.ok(growth < 50, `RSS grew ${growth} MiB`);
  });
});
