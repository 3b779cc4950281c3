// A 12-point sweep on one model: peak RSS against the model file's size plus one context's buffers.
// Run in its own process so the peak belongs to this job alone.
import { statSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel, sweep } from '../dist/index.js';
import { demoModel, demoText, line, work } from './lib.mjs';

export async function benchMemory({ model = demoModel } = {}) {
  const base = process.memoryUsage().rss;
  const m = await loadModel(model);
  const ctx = await m.createContext({ contextSize: 256, batchSize: 1024, threads: 2 });
  const afterContext = process.memoryUsage().rss;
  await ctx.dispose();
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  await sweep(m, { grid: { experts: [1, 2, 3, 4], expertScale: ['none', 'seed-uniform', 'uniform'] }, file: demoText, out: join(work, `memory-${Date.now()}.jsonl`), contextSize: 256, batchSize: 1024, threads: 2, chunks: 4 });
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  await m.dispose();
  const file = statSync(model).size;
  const contextBytes = afterContext - base - file;
  const budget = (file + Math.max(0, contextBytes)) * 1.1 + base;
  line('peak RSS of a 12-point sweep', `${((peak - base) / 2 ** 20).toFixed(1)} MiB over the Node baseline; file ${(file / 2 ** 20).toFixed(1)} MiB, one context ≈ ${(Math.max(0, contextBytes) / 2 ** 20).toFixed(1)} MiB`, { ok: peak <= budget, text: '≤ file + context + 10 %' });
  return { peak, file, contextBytes };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchMemory();
