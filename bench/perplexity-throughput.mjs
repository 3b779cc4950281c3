// evaluate() against llama.cpp's llama-perplexity (built from the same vendor tree): same model, text,
// context, batch and threads; alternating runs, median of 5 paired ratios. Also checks both print the same PPL.
import { evaluate, loadModel } from '../dist/index.js';
import { alternate, demoModel, demoText, line, requirePeer, runLlamaPerplexity, spread } from './lib.mjs';

export async function benchPerplexity({ model = demoModel, text = demoText, c = 256, b = 1024, t = 2, chunks = 254, label = 'demo model, 65k tokens', rounds = 5 } = {}) {
  requirePeer();
  let ours;
  let theirs;
  const r = await alternate(
    rounds,
    async () => {
      theirs = await runLlamaPerplexity(['-m', model, '-f', text, '-c', String(c), '-b', String(b), '-t', String(t), '--chunks', String(chunks)]);
    },
    async () => {
      // the same job as the llama-perplexity process: load, tokenize, evaluate, free
      const m = await loadModel(model);
      ours = await evaluate(m, { file: text, contextSize: c, batchSize: b, threads: t, chunks });
      await m.dispose();
    },
  );
  const speed = 1 / r.ratio;
  line(`perplexity throughput vs llama-perplexity (${label})`, `${speed.toFixed(2)}× (llama-perplexity ${r.a.toFixed(0)} ms, moe-eval ${r.b.toFixed(0)} ms, medians of ${rounds}; the ratio is the median of paired runs; both load + evaluate)`, { ok: speed >= 1, text: '≥ 1.00' });
  // the noise floor of this run: how much the same llama-perplexity command varied against itself
  line(`  noise: spread of each side's own ${rounds} runs`, `llama-perplexity ${spread(r.ta).toFixed(1)} %, moe-eval ${spread(r.tb).toFixed(1)} % ((max − min) / median)`);
  line(`  same perplexity (${label})`, `${ours.perplexity.toFixed(4)} vs ${theirs.perplexity.toFixed(4)}`, { ok: Math.abs(ours.perplexity - theirs.perplexity) < 1e-4 + 1e-6 * theirs.perplexity, text: 'equal to 4 decimals' });
  line(
    `  of moe-eval's evaluation (${label})`,
    `decode ${(ours.elapsedMs - ours.scoringMs).toFixed(0)} ms, scoring the logits ${ours.scoringMs.toFixed(0)} ms (${((100 * ours.scoringMs) / ours.elapsedMs).toFixed(1)} %): the most that overlapping scoring with the next decode could hide`,
  );
  return { speed, ours: ours.perplexity, theirs: theirs.perplexity };
}

if (import.meta.url === `file://${process.argv[1]}`) await benchPerplexity();
