// moe-eval's evaluate() against node-llama-cpp@3.21.1 (its prebuilt binary, public API): the same
// perplexity computed from per-token probabilities through controlledEvaluate(), on the same tokens
// and chunks, and the speed ratio (alternating runs, medians). node-llama-cpp is installed on first use
// into .moe-eval-cache/bench-peer (it is not a dependency of moe-eval).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { evaluate, loadModel } from '../dist/index.js';
import { demoModel, demoText, line, median, time, work } from './lib.mjs';

const peerDir = join(work, '..', 'bench-peer');
const entry = join(peerDir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');

export async function benchNodeLlamaCpp({ model: modelPath = demoModel, label = 'demo model, vocabulary 4,096', chunks = 4, c = 256, t = 2, rounds = 3 } = {}) {
  if (!existsSync(entry)) {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', peerDir, 'node-llama-cpp@3.21.1'], { stdio: 'inherit' });
  }
  const { getLlama } = await import(entry);
  const first = c / 2;

  // both sides: model loaded and context created before any clock starts
  const m = await loadModel(modelPath);
  const tokens = await m.tokenize(readFileSync(demoText, 'utf8'));
  const bos = tokens[0];
  const mctx = await m.createContext({ contextSize: c, batchSize: c, threads: t });
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const model = await llama.loadModel({ modelPath });
  const ctx = await model.createContext({ contextSize: c, batchSize: c, threads: t });
  const seq = ctx.getSequence();

  const ours = async () => (await evaluate(mctx, { tokens, chunks })).perplexity;
  // node-llama-cpp: per-token probability maps (what perplexity needs) ...
  const theirs = async (generateNext) => {
    let nll = 0;
    let count = 0;
    for (let k = 0; k < chunks; k++) {
      const chunk = Array.from(tokens.subarray(k * c, (k + 1) * c));
      chunk[0] = bos; // llama-perplexity puts BOS at each chunk's start
      await seq.clearHistory();
      const res = await seq.controlledEvaluate(chunk.map((tok, i) => (i >= first && i < c - 1 ? [tok, { generateNext }] : tok)));
      if (!generateNext.probabilities) continue;
      for (let i = first; i < c - 1; i++) {
        nll -= Math.log(res[i].next.probabilities.get(chunk[i + 1]));
        count++;
      }
    }
    return count > 0 ? Math.exp(nll / count) : undefined;
  };
  // ... and only a greedy next token at the same positions: the same decodes and logits without the
  // maps, the floor of what its public API costs here (it cannot give a perplexity).
  const times = { ours: [], full: [], floor: [] };
  let pplOurs;
  let pplTheirs;
  for (let r = 0; r < rounds; r++) {
    await time(async () => (pplOurs = await ours()), times.ours);
    await time(async () => (pplTheirs = await theirs({ probabilities: true })), times.full);
    await time(() => theirs({ token: true }), times.floor);
  }
  await Promise.all([mctx.dispose(), ctx.dispose()]);
  await Promise.all([m.dispose(), model.dispose()]);

  const [oursMs, theirsMs, floorMs] = [median(times.ours), median(times.full), median(times.floor)];
  const rel = Math.abs(pplOurs / pplTheirs - 1);
  line(`same perplexity as node-llama-cpp (${label})`, `${pplOurs.toFixed(4)} vs ${pplTheirs.toFixed(4)} (${rel.toExponential(1)} relative)`, { ok: rel <= 1e-3, text: '≤ 1e-3' });
  line(`speed against node-llama-cpp (${label})`, `${(theirsMs / oursMs).toFixed(1)}× (${theirsMs.toFixed(0)} ms vs ${oursMs.toFixed(0)} ms for ${chunks} chunks, median of ${rounds})`, { ok: theirsMs / oursMs >= 20, text: '≥ 20×' });
  line(
    '  of which its decodes (greedy token, no maps)',
    `${floorMs.toFixed(0)} ms = ${(floorMs / oursMs).toFixed(1)}× ours; its probability maps: ${(theirsMs - floorMs).toFixed(0)} ms, ${(((theirsMs - floorMs) / theirsMs) * 100).toFixed(0)} % of its time`,
  );
  return { ours: pplOurs, theirs: pplTheirs, speed: theirsMs / oursMs, oursMs, theirsMs, floorMs };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchNodeLlamaCpp();
