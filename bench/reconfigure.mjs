// From "new routing" to "first chunk evaluated" on a loaded model, against the file-rewrite workflow
// (export a scaled GGUF, load it, evaluate), for two model sizes about 10× apart.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { createRandomModel, evaluate, exportModel, loadModel } from '../dist/index.js';
import { demoText, line, median, time, work } from './lib.mjs';

const SIZES = {
  small: { arch: 'llama', layers: 4, embeddingLength: 256, heads: 4, headsKv: 2, feedForwardLength: 256, expertCount: 8, expertsUsed: 2 },
  large: { arch: 'llama', layers: 8, embeddingLength: 768, heads: 12, headsKv: 4, feedForwardLength: 768, expertCount: 8, expertsUsed: 2 },
};

export async function benchReconfigure({ rounds = 5, t = 2 } = {}) {
  const out = {};
  for (const [name, spec] of Object.entries(SIZES)) {
    const path = join(work, `reconfigure-${name}.gguf`);
    if (!existsSync(path)) await createRandomModel(path, { ...spec, seed: 1 });
    const m = await loadModel(path);
    // tokenized once: the timings below are routing, graph and decode, not reading a text file
    const tokens = (await m.tokenize(readFileSync(demoText, 'utf8'))).subarray(0, 256);
    const ctx = await m.createContext({ contextSize: 128, batchSize: 128, threads: t });
    await evaluate(ctx, { tokens, chunks: 1 });
    const runtime = [];
    const rewrite = [];
    const chunk = [];
    for (let i = 0; i < rounds; i++) {
      const routing = { expertScale: 1 + 0.1 * (i + 1) };
      // new routing → chunk, then the same chunk again under that routing (llama.cpp reuses the graph):
      // the pair's difference is the reconfiguration alone
      await time(() => evaluate(ctx, { tokens, chunks: 1, routing }), runtime);
      await time(() => evaluate(ctx, { tokens, chunks: 1 }), chunk);
      await time(async () => {
        const file = join(work, `reconfigure-${name}-scaled.gguf`);
        await exportModel(m, file, { routing });
        const m2 = await loadModel(file);
        await evaluate(m2, { tokens, contextSize: 128, batchSize: 128, threads: t, chunks: 1 });
        await m2.dispose();
        rmSync(file, { force: true });
      }, rewrite);
    }
    const rt = median(runtime);
    const rw = median(rewrite);
    const overhead = median(runtime.map((x, i) => x - chunk[i]));
    out[name] = { params: m.info.parameters, runtime: rt, rewrite: rw, chunk: median(chunk), overhead };
    line(
      `new routing → first chunk, ${name} model (${(m.info.parameters / 1e6).toFixed(0)} M params)`,
      `runtime ${rt.toFixed(0)} ms (chunk alone ${median(chunk).toFixed(0)} ms, reconfiguration ${overhead.toFixed(1)} ms) vs rewrite + load ${rw.toFixed(0)} ms: ${(rw / rt).toFixed(1)}×`,
      { ok: overhead <= 50, text: 'reconfiguration ≤ 50 ms, flat in model size' },
    );
    await m.dispose();
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) await benchReconfigure();
