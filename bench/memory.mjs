// A 12-point sweep on one model: its peak RSS against the peak of one evaluation on one context (the
// mapped model file plus one context's buffers in use), both sampled the same way in one process.
// Target: the sweep costs no more than that + 10 % — weights are mapped once and contexts reused.
import { statSync } from 'node:fs';
import { join } from 'node:path';

import { evaluate, loadModel, sweep } from '../dist/index.js';
import { demoModel, demoText, line, work } from './lib.mjs';

async function peakDuring(fn) {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage().rss);
}

export async function benchMemory({ model = demoModel } = {}) {
  const base = process.memoryUsage().rss;
  const m = await loadModel(model);
  const one = await peakDuring(async () => {
    const ctx = await m.createContext({ contextSize: 256, batchSize: 1024, threads: 2, routing: { experts: 4 } });
    await evaluate(ctx, { file: demoText, chunks: 4, routing: { experts: 4, expertScale: 'uniform' } });
    await ctx.dispose();
  });
  const all = await peakDuring(() =>
    sweep(m, { grid: { experts: [1, 2, 3, 4], expertScale: ['none', 'seed-uniform', 'uniform'] }, file: demoText, out: join(work, `memory-${Date.now()}.jsonl`), contextSize: 256, batchSize: 1024, threads: 2, chunks: 4 }),
  );
  await m.dispose();
  const file = statSync(model).size;
  const ratio = (all - base) / (one - base);
  line(
    'peak RSS: 12-point sweep against one evaluation (over the Node baseline)',
    `${((all - base) / 2 ** 20).toFixed(1)} MiB vs ${((one - base) / 2 ** 20).toFixed(1)} MiB (file ${(file / 2 ** 20).toFixed(1)} MiB + one context): ratio ${ratio.toFixed(2)}`,
    { ok: ratio <= 1.1, text: '≤ 1.10' },
  );
  return { all, one, file, ratio };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchMemory();
