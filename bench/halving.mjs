// Successive halving against the full grid (docs/search.md): on the demo model and a 13-point grid
// (experts 1–4 × expert-output scale none, seed-uniform, uniform, zipf:1; at the trained count of 2 every
// rule is the default routing, so 16 combinations are 13 points), both strategies sweep the same
// held-out text; the bar: halving chooses the full grid's best point (lowest perplexity) while decoding
// at least 5× fewer tokens. Prints both token counts, their ratio, both best points, the wall times, and
// checks that every point halving kept to the end has the full grid's numbers.
// Options: METRIC=kld (KL-divergence against the default routing), CHUNKS (default: all 254 chunks of 256
// tokens), INITIAL (c_0; default the sweep's), ALPHA, REUSE_GRID=1.
// Hold the CPU lock while this runs.
import { rmSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel, sweep } from '../dist/index.js';
import { demoModel, demoText, work } from './lib.mjs';

const env = (k) => (process.env[k] === undefined ? undefined : Number(process.env[k]));
const kld = process.env.METRIC === 'kld';
const rules = ['none', 'seed-uniform', 'uniform', 'zipf:1'];
// NLL: experts 1–4 × 4 rules (13 points, the default routing among them). KLD against the default routing:
// the default itself would win with KLD 0, so experts 1, 3, 4 × 4 rules and -ser 1,0.3 at the trained count.
const points = kld
  ? { routings: [...[1, 3, 4].flatMap((m) => rules.map((r) => ({ experts: m, expertScale: r }))), { experts: 2, minExperts: 1, minWeightRatio: 0.3 }] }
  : { grid: { experts: [1, 2, 3, 4], expertScale: rules } };
const common = { ...points, file: demoText, contextSize: 256, batchSize: 1024, ...(kld ? { reference: 'default' } : {}), ...(env('CHUNKS') ? { chunks: env('CHUNKS') } : {}) };

const model = await loadModel(demoModel);
const outHalving = join(work, 'halving-halving.jsonl');
// REUSE_GRID=1 keeps the full grid's results file (it resumes to the same rows at once; its wall time is then not measured)
const outGridFile = join(work, `halving-grid-${kld ? 'kld' : 'nll'}-${env('CHUNKS') ?? 'all'}.jsonl`);
for (const f of [...(process.env.REUSE_GRID ? [] : [outGridFile, `${outGridFile}.base.kld`]), outHalving, `${outHalving}.base.kld`]) rmSync(f, { force: true });

const best = (rows) => rows.reduce((b, r) => ((kld ? r.kldMean < b.kldMean : r.nll < b.nll) ? r : b));
const same = (a, b) => Math.abs(a - b) <= 1e-12 * Math.abs(b);
let t = performance.now();
const full = await sweep(model, { ...common, out: outGridFile });
const gridMs = performance.now() - t;
t = performance.now();
const h = await sweep(model, {
  ...common,
  out: outHalving,
  strategy: 'halving',
  ...(env('INITIAL') ? { initialChunks: env('INITIAL') } : {}),
  ...(env('ALPHA') ? { alpha: env('ALPHA') } : {}),
});
const halvingMs = performance.now() - t;
await model.dispose();

const byKey = new Map(full.rows.map((r) => [r.key, r]));
console.log(`points: ${full.rows.length} (${full.duplicates.length} combinations duplicate another), ${h.halving.totalChunks} chunks of 256 tokens, c_0 = ${h.halving.initialChunks}, alpha = ${h.halving.alpha}, metric ${h.halving.metric}`);
console.log('\nround  chunks  points  dropped  leader');
for (const r of h.halving.rounds) console.log(`${String(r.round).padEnd(6)} ${String(r.chunks).padEnd(7)} ${String(r.points).padEnd(7)} ${String(r.dropped).padEnd(8)} ${r.leader}`);
console.log(`\npoint                               grid ${kld ? 'KLD     ' : 'PPL     '}   halving: chunks  ${kld ? 'KLD     ' : 'PPL     '}  dropped (t > critical, against)`);
const v = (r) => (kld ? r.kldMean.toFixed(6) : r.perplexity.toFixed(4));
for (const r of h.rows) {
  const g = byKey.get(r.key);
  const d = r.dropped ? `round ${r.dropped.round}: t ${r.dropped.t.toFixed(2)} > ${r.dropped.critical.toFixed(2)} (df ${r.dropped.df}) vs ${r.dropped.against}` : r.best ? 'best' : 'survived';
  console.log(`${r.routing.padEnd(35)} ${v(g).padEnd(10)} ${String(r.chunks).padEnd(16)} ${v(r).padEnd(9)} ${d}`);
  if (r.chunks === h.halving.totalChunks && (!same(r.perplexity, g.perplexity) || !same(r.stderr, g.stderr) || (kld && !same(r.kldMean, g.kldMean)))) {
    throw new Error(`${r.routing}: all chunks in pieces give PPL ${r.perplexity} ± ${r.stderr}, the grid ${g.perplexity} ± ${g.stderr}`);
  }
}
const bg = best(full.rows);
const bh = h.rows.find((r) => r.best);
const ratio = full.tokensEvaluated / h.tokensEvaluated;
console.log(`\nbest point: full grid ${bg.routing} (${v(bg)}), halving ${bh.routing} (${v(bh)} on ${bh.chunks} chunks): ${bg.key === bh.key ? 'the same' : 'DIFFERENT'}`);
console.log(`tokens decoded: full grid ${full.tokensEvaluated}, halving ${h.tokensEvaluated}: ${ratio.toFixed(2)}× fewer`);
if (kld) {
  const base = h.halving.totalChunks * 256;
  console.log(`with the KL-divergence base (the default routing on every chunk, written once by each sweep): ${full.tokensEvaluated + base} and ${h.tokensEvaluated + base}: ${((full.tokensEvaluated + base) / (h.tokensEvaluated + base)).toFixed(2)}× fewer`);
}
console.log(`wall time: full grid ${(gridMs / 1000).toFixed(1)} s, halving ${(halvingMs / 1000).toFixed(1)} s: ${(gridMs / halvingMs).toFixed(2)}× faster`);
const ok = bg.key === bh.key && ratio >= 5;
console.log(`bar (same best point, ≥ 5× fewer tokens): ${ok ? 'met' : 'NOT met'}`);
process.exitCode = ok ? 0 : 1;
