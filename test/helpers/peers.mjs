// llama.cpp's own tools, built from the same vendor tree and objects as the addon (`npm run build:peers`).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { root } from './fixtures.mjs';

export const llamaPerplexity = join(root, 'build', 'tools', 'perplexity', 'llama-perplexity');

if (!existsSync(llamaPerplexity)) {
  throw new Error(`${llamaPerplexity} is missing: run \`npm run build:peers\` (npm test does it first)`);
}

/** Runs llama-perplexity and returns its final estimate and per-chunk running values. */
export async function runLlamaPerplexity(args) {
  const { stdout, stderr } = await promisify(execFile)(llamaPerplexity, args, { maxBuffer: 64 << 20 });
  const out = stdout + stderr;
  const m = /Final estimate: PPL = ([0-9.]+) \+\/- ([0-9.]+)/.exec(out);
  if (!m && !args.includes('--kl-divergence')) throw new Error(`llama-perplexity printed no estimate:\n${out.slice(-2000)}`);
  if (!m) return { perplexity: NaN, stderr: NaN, running: [], output: out };
  const running = [...out.matchAll(/\[(\d+)\]([0-9.]+),/g)].map((x) => Number(x[2]));
  return { perplexity: Number(m[1]), stderr: Number(m[2]), running, output: out };
}
