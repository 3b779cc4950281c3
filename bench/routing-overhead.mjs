// Non-default routing (scales ≠ 1, the same expert count) against default routing on one context:
// the cost of the hook's extra graph ops. Alternating, median of 11 paired ratios, on tokens prepared
// once (so that the text file's tokenization is not in the timings).
import { readFileSync } from 'node:fs';

import { evaluate, loadModel } from '../dist/index.js';
import { alternate, demoModel, demoText, line, spread } from './lib.mjs';

export async function benchRoutingOverhead({ model = demoModel, text = demoText, c = 256, b = 1024, t = 2, chunks = 16, rounds = 11 } = {}) {
  const m = await loadModel(model);
  const ctx = await m.createContext({ contextSize: c, batchSize: b, threads: t });
  const tokens = await m.tokenize(readFileSync(text, 'utf8'));
  await evaluate(ctx, { tokens, chunks: 2 }); // warm up
  const r = await alternate(
    rounds,
    () => evaluate(ctx, { tokens, chunks, routing: {} }),
    () => evaluate(ctx, { tokens, chunks, routing: { expertScale: 1.1, gateScale: 1.2 } }),
  );
  await m.dispose();
  const overhead = 100 * (r.ratio - 1);
  line('routing overhead (expertScale 1.1, gateScale 1.2 vs default)', `${overhead >= 0 ? '+' : ''}${overhead.toFixed(2)} % (${r.a.toFixed(0)} → ${r.b.toFixed(0)} ms, median of ${rounds} pairs)`, { ok: overhead <= 1, text: '≤ 1 %' });
  line('  noise: spread of the default routing\'s own runs', `${spread(r.ta).toFixed(1)} % ((max − min) / median of ${rounds})`);
  return { overhead };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchRoutingOverhead();
