// moe-eval's evaluate() against node-llama-cpp@3.21.1 (its prebuilt binary, public API): the same
// perplexity computed from per-token probabilities through controlledEvaluate(), on the same tokens
// and chunks, and the speed ratio. node-llama-cpp is installed on first use into
// .moe-eval-cache/bench-peer (it is not a dependency of moe-eval).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { evaluate, loadModel } from '../dist/index.js';
import { demoModel, demoText, line, work } from './lib.mjs';

const peerDir = join(work, '..', 'bench-peer');
const entry = join(peerDir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');

export async function benchNodeLlamaCpp({ model: modelPath = demoModel, label = 'demo model, vocabulary 4,096', chunks = 4, c = 256, t = 2 } = {}) {
  if (!existsSync(entry)) {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', peerDir, 'node-llama-cpp@3.21.1'], { stdio: 'inherit' });
  }
  const { getLlama } = await import(entry);
  const m = await loadModel(modelPath);
  const tokens = await m.tokenize(readFileSync(demoText, 'utf8'));
  const first = c / 2;

  // both sides: model loaded and context created before the clock starts
  const mctx = await m.createContext({ contextSize: c, batchSize: c, threads: t });
  const t0 = performance.now();
  const ours = await evaluate(mctx, { tokens, chunks });
  const oursMs = performance.now() - t0;
  await mctx.dispose();
  const bos = tokens[0];
  await m.dispose();

  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const model = await llama.loadModel({ modelPath });
  const ctx = await model.createContext({ contextSize: c, batchSize: c, threads: t });
  const seq = ctx.getSequence();
  let nll = 0;
  let count = 0;
  const t1 = performance.now();
  for (let k = 0; k < chunks; k++) {
    const chunk = Array.from(tokens.subarray(k * c, (k + 1) * c));
    chunk[0] = bos; // llama-perplexity puts BOS at each chunk's start
    await seq.clearHistory();
    const res = await seq.controlledEvaluate(chunk.map((tok, i) => (i >= first && i < c - 1 ? [tok, { generateNext: { probabilities: true } }] : tok)));
    for (let i = first; i < c - 1; i++) {
      nll -= Math.log(res[i].next.probabilities.get(chunk[i + 1]));
      count++;
    }
  }
  const theirsMs = performance.now() - t1;
  await ctx.dispose();
  await model.dispose();
  const theirs = Math.exp(nll / count);
  const rel = Math.abs(ours.perplexity / theirs - 1);
  line(`same perplexity as node-llama-cpp (${label})`, `${ours.perplexity.toFixed(4)} vs ${theirs.toFixed(4)} (${rel.toExponential(1)} relative, ${count} tokens)`, { ok: rel <= 1e-3, text: '≤ 1e-3' });
  line(`speed against node-llama-cpp (${label})`, `${(theirsMs / oursMs).toFixed(0)}× (${theirsMs.toFixed(0)} ms vs ${oursMs.toFixed(0)} ms for ${chunks} chunks)`, { ok: theirsMs / oursMs >= 20, text: '≥ 20×' });
  return { ours: ours.perplexity, theirs, speed: theirsMs / oursMs };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchNodeLlamaCpp();
