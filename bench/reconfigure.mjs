// From "new routing" to "first chunk evaluated" on a loaded model, against the file-rewrite workflow
// (export a scaled GGUF, load it, evaluate), for two model sizes about 10× apart.
import { join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';

import { createRandomModel, evaluate, exportModel, loadModel } from '../dist/index.js';
import { demoText, line, median, work } from './lib.mjs';

const SIZES = {
  small: { arch: 'llama', layers: 4, embeddingLength: 256, heads: 4, headsKv: 2, feedForwardLength: 256, experts: 8, expertsUsed: 2 },
  large: { arch: 'llama', layers: 8, embeddingLength: 768, heads: 12, headsKv: 4, feedForwardLength: 768, experts: 8, expertsUsed: 2 },
};

export async function benchReconfigure({ rounds = 3, t = 2 } = {}) {
  const out = {};
  for (const [name, spec] of Object.entries(SIZES)) {
    const path = join(work, `reconfigure-${name}.gguf`);
    if (!existsSync(path)) await createRandomModel(path, { ...spec, seed: 1 });
    const m = await loadModel(path);
    const ctx = await m.createContext({ contextSize: 128, batchSize: 128, threads: t });
    await evaluate(ctx, { file: demoText, chunks: 1 });
    const runtime = [];
    const rewrite = [];
    for (let i = 0; i < rounds; i++) {
      let t0 = performance.now();
      await evaluate(ctx, { file: demoText, chunks: 1, routing: { expertScale: 1 + 0.1 * (i + 1) } });
      runtime.push(performance.now() - t0);
      t0 = performance.now();
      const file = join(work, `reconfigure-${name}-scaled.gguf`);
      await exportModel(m, file, { routing: { expertScale: 1 + 0.1 * (i + 1) } });
      const m2 = await loadModel(file);
      await evaluate(m2, { file: demoText, contextSize: 128, batchSize: 128, threads: t, chunks: 1 });
      await m2.dispose();
      rmSync(file, { force: true });
      rewrite.push(performance.now() - t0);
    }
    // the chunk itself costs the same both ways; subtract it to get the reconfiguration alone
    const chunk = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await evaluate(ctx, { file: demoText, chunks: 1 });
      chunk.push(performance.now() - t0);
    }
    const rt = median(runtime);
    const rw = median(rewrite);
    const overhead = rt - median(chunk);
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
