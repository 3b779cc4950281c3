// A 12-point sweep on one model: its peak RSS against the peak of one evaluation on one context (the
// mapped model file plus one context's buffers in use), both sampled the same way in one process.
// Target: the sweep costs no more than that + 10 % — weights are mapped once and contexts reused.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { evaluate, loadModel, sweep, systemInfo } from '../dist/index.js';
import { demoModel, demoText, line, llamaPerplexity, runMeasured, work } from './lib.mjs';

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
  systemInfo(); // the baseline includes the addon's code
  const base = process.memoryUsage().rss;
  const m = await loadModel(model);
  let buffers;
  const one = await peakDuring(async () => {
    const ctx = await m.createContext({ contextSize: 256, batchSize: 1024, threads: 2, routing: { experts: 4 } });
    await evaluate(ctx, { file: demoText, chunks: 4, routing: { experts: 4, expertScale: 'uniform' } });
    buffers = await ctx.memory();
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
  const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  // llama.cpp's own accounting of that context covers the KV cache and the compute buffers; the rest of
  // one evaluation is per-context data llama.cpp does not count there (the scheduler's tables, the
  // logits buffer) and the worker threads.
  line(
    'one evaluation, of which',
    `file ${mib(file)}, KV ${mib(buffers.context)}, compute ${mib(buffers.compute)} (llama.cpp's accounting), rest ${mib(one - base - file - buffers.context - buffers.compute)}`,
  );
  let peer;
  if (existsSync(llamaPerplexity) && process.platform === 'linux') {
    // the peer: llama-perplexity's peak RSS for ONE evaluation with the same settings, whole process
    peer = (await runMeasured(llamaPerplexity, ['-m', model, '-f', demoText, '-c', '256', '-b', '1024', '-t', '2', '--chunks', '4'])).peak;
    line('peak RSS: 12-point sweep (over Node) against llama-perplexity, one point', `${mib(all - base)} vs ${mib(peer)} (whole process): ratio ${((all - base) / peer).toFixed(2)}`, { ok: (all - base) / peer <= 1.1, text: '≤ 1.10' });
  }
  return { all, one, file, ratio, buffers, peer };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchMemory();
