// llama.cpp's own tools, built from the same vendor tree and objects as the addon (`npm run build:peers`).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { root } from './fixtures.mjs';

// MOE_EVAL_BUILD_DIR: the peers of another build (the Vulkan suite's build-vulkan/), as for the addon
const buildDir = resolve(root, process.env.MOE_EVAL_BUILD_DIR || 'build');
export const llamaPerplexity = join(buildDir, 'tools', 'perplexity', 'llama-perplexity');
export const llamaBench = join(buildDir, 'tools', 'llama-bench', 'llama-bench');

if (!existsSync(llamaPerplexity)) {
  throw new Error(`${llamaPerplexity} is missing: run \`npm run build:peers\` (npm test does it first)`);
}

/**
 * Runs llama-perplexity and returns its final estimate and per-chunk running values. llama.cpp's
 * common logger prints from a background thread and, on a loaded machine, now and then exits before
 * its last lines reach the pipe (seen in CI: chunks 1–5 of 6 and no estimate); such a run is repeated,
 * at most twice — the numbers themselves are deterministic.
 */
export async function runLlamaPerplexity(args) {
  const wantsEstimate = !args.includes('--kl-divergence');
  let out = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const { stdout, stderr } = await promisify(execFile)(llamaPerplexity, args, { maxBuffer: 64 << 20 });
    out = stdout + stderr;
    const m = /Final estimate: PPL = ([0-9.]+) \+\/- ([0-9.]+)/.exec(out);
    const complete = wantsEstimate ? m !== null : /Same top p:/.test(out) || args.includes('--kl-divergence-base') && !args.includes('--kl-divergence');
    if (!complete) continue;
    if (!m) return { perplexity: NaN, stderr: NaN, running: [], output: out };
    const running = [...out.matchAll(/\[(\d+)\]([0-9.]+),/g)].map((x) => Number(x[2]));
    return { perplexity: Number(m[1]), stderr: Number(m[2]), running, output: out };
  }
  throw new Error(`llama-perplexity's output stayed incomplete in 3 runs:\n${out.slice(-2000)}`);
}

export const llamaImatrix = join(buildDir, 'tools', 'imatrix', 'llama-imatrix');
export const llamaQuantize = join(buildDir, 'tools', 'quantize', 'llama-quantize');

/** Runs one of llama.cpp's tools (a file-producing one: llama-imatrix, llama-quantize); returns its output. */
export async function runPeer(tool, args) {
  if (!existsSync(tool)) throw new Error(`${tool} is missing: run \`npm run build:peers\` (npm test does it first)`);
  const { stdout, stderr } = await promisify(execFile)(tool, args, { maxBuffer: 64 << 20 });
  return stdout + stderr;
}
