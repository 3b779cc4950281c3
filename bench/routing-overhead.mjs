// Non-default routing (scales ≠ 1, the same expert count) against default routing on one context:
// the cost of the hook's extra graph ops. Alternating, median of 5.
import { evaluate, loadModel } from '../dist/index.js';
import { alternate, demoModel, demoText, line } from './lib.mjs';

export async function benchRoutingOverhead({ model = demoModel, text = demoText, c = 256, b = 1024, t = 2, chunks = 16, rounds = 5 } = {}) {
  const m = await loadModel(model);
  const ctx = await m.createContext({ contextSize: c, batchSize: b, threads: t });
  await evaluate(ctx, { file: text, chunks: 2 }); // warm up
  const r = await alternate(
    rounds,
    () => evaluate(ctx, { file: text, chunks, routing: {} }),
    () => evaluate(ctx, { file: text, chunks, routing: { expertScale: 1.1, gateScale: 1.2 } }),
  );
  await m.dispose();
  const overhead = 100 * (r.ratio - 1);
  line('routing overhead (expertScale 1.1, gateScale 1.2 vs default)', `${overhead >= 0 ? '+' : ''}${overhead.toFixed(2)} % (${r.a.toFixed(0)} → ${r.b.toFixed(0)} ms)`, { ok: overhead <= 1, text: '≤ 1 %' });
  return { overhead };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchRoutingOverhead();
