// A 12-point sweep on one model: peak RSS against the model file's size plus one context's buffers.
// Run in its own process so the peak belongs to this job alone.
import { statSync } from 'node:fs';
import { join } from 'node:path';

import { evaluate, loadModel, sweep } from '../dist/index.js';
import { demoModel, demoText, line, work } from './lib.mjs';

export async function benchMemory({ model = demoModel } = {}) {
  const base = process.memoryUsage().rss;
  const m = await loadModel(model);
  // one context with its buffers in use: created for the sweep's largest expert count, one evaluation
  const ctx = await m.createContext({ contextSize: 256, batchSize: 1024, threads: 2, routing: { experts: 4 } });
  await evaluate(ctx, { file: demoText, chunks: 4 });
  const afterContext = process.memoryUsage().rss;
  await ctx.dispose();
  let peak = 0;
  let heapAtPeak = 0;
  const heapAtSingle = process.memoryUsage().heapTotal;
  const timer = setInterval(() => {
    const u = process.memoryUsage();
    if (u.rss > peak) [peak, heapAtPeak] = [u.rss, u.heapTotal];
  }, 20);
  await sweep(m, { grid: { experts: [1, 2, 3, 4], expertScale: ['none', 'seed-uniform', 'uniform'] }, file: demoText, out: join(work, `memory-${Date.now()}.jsonl`), contextSize: 256, batchSize: 1024, threads: 2, chunks: 4 });
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  await m.dispose();
  const file = statSync(model).size;
  // afterContext - base = the mapped file's resident pages + one context's buffers in use
  const single = afterContext - base;
  const contextBytes = single - file;
  const ok = peak - base <= 1.1 * single;
  line('peak RSS of a 12-point sweep (over the Node baseline)', `${((peak - base) / 2 ** 20).toFixed(1)} MiB; file ${(file / 2 ** 20).toFixed(1)} MiB + one context in use ${(contextBytes / 2 ** 20).toFixed(1)} MiB = ${(single / 2 ** 20).toFixed(1)} MiB (ratio ${((peak - base) / single).toFixed(2)}; JS heap ${(heapAtSingle / 2 ** 20).toFixed(1)} → ${(heapAtPeak / 2 ** 20).toFixed(1)} MiB)`, { ok, text: '≤ file + context + 10 %' });
  return { peak, file, contextBytes };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchMemory();
