// Shared helpers for the benchmarks: every figure is a ratio against a peer measured in the same run,
// alternating runs, median of several, because timings on shared machines are noisy.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const work = join(root, '.moe-eval-cache', 'bench');
mkdirSync(work, { recursive: true });
// the peer from the same build as the addon under test (MOE_EVAL_BUILD_DIR=build-cuda: both on the GPU)
export const llamaPerplexity = join(root, process.env.MOE_EVAL_BUILD_DIR || 'build', 'tools', 'perplexity', 'llama-perplexity');
export const demoModel = join(root, 'models', 'demo', 'moe-demo.gguf');
export const demoText = join(root, 'models', 'demo', 'heldout.txt');

export function requirePeer() {
  if (!existsSync(llamaPerplexity)) throw new Error(`${llamaPerplexity} is missing: run \`npm run build:peers\``);
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** How far a set of timings of one job spreads: (max − min) / median, in per cent. */
export const spread = (xs) => (100 * (Math.max(...xs) - Math.min(...xs))) / median(xs);

/** Runs fn() and appends its wall time (ms) to `into`. */
export async function time(fn, into) {
  const t = performance.now();
  await fn();
  into.push(performance.now() - t);
}

/**
 * Runs a() and b() alternately `rounds` times (which one goes first alternates too); returns both
 * medians (ms) and the median of the per-round ratios b/a. Two runs next to each other share the
 * machine's load of the moment, so the paired ratio is steadier than a ratio of medians on shared
 * machines, where single runs of the same job vary by tens of per cent (spread() shows how much).
 */
export async function alternate(rounds, a, b) {
  const ta = [];
  const tb = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      await time(a, ta);
      await time(b, tb);
    } else {
      await time(b, tb);
      await time(a, ta);
    }
  }
  return { a: median(ta), b: median(tb), ratio: median(tb.map((x, i) => x / ta[i])), rounds, ta, tb };
}

export async function runLlamaPerplexity(args) {
  const { stdout, stderr } = await promisify(execFile)(llamaPerplexity, args, { maxBuffer: 64 << 20 });
  const out = stdout + stderr;
  const m = /Final estimate: PPL = ([0-9.]+)/.exec(out);
  return { perplexity: m ? Number(m[1]) : NaN, output: out };
}

/**
 * Runs a command and measures it from the outside: wall time (ms) and peak RSS in bytes (VmHWM, read
 * from /proc every few ms while it runs: the kernel's high-water mark only grows, so the last read
 * before exit holds the peak; it counts the mapped model file's resident pages too). Linux only. Rejects on a non-zero exit with the command's stderr tail.
 */
export function runMeasured(cmd, args, { env } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let peak = 0;
    const read = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) * 1024);
      } catch {
        // exited between two reads
      }
    };
    const timer = setInterval(read, 5);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${stderr.slice(-2000)}`));
      else resolve({ ms, peak, stdout, stderr });
    });
  });
}

/**
 * Drops a file's pages from the page cache (posix_fadvise DONTNEED through coreutils dd; written pages
 * are synced first, since dirty pages cannot be dropped). Only this file: the rest of the cache stays.
 */
export function dropCache(path) {
  execFileSync('sync', [path]);
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** The share of a file's pages in the page cache, 0–1 (util-linux fincore). */
export function cachedShare(path) {
  const [res, size] = execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES,SIZE', path], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  return size ? res / size : 0;
}

export function machine() {
  return `${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}`;
}

export function line(name, value, target) {
  const pass = target === undefined ? '' : target.ok ? `  ✓ (target ${target.text})` : `  ✗ (target ${target.text})`;
  console.log(`${name.padEnd(58)} ${value}${pass}`);
}

/** A generated ~175 M-parameter MoE (8 layers, d 768, 8 experts, top-2) in the given llama-quantize type ('f32': as generated). */
export async function largeModel(type) {
  const { createRandomModel, quantizeModel } = await import('../dist/index.js');
  const src = join(work, 'large-f32.gguf');
  if (!existsSync(src)) {
    await createRandomModel(src, { arch: 'llama', layers: 8, embeddingLength: 768, heads: 12, headsKv: 4, feedForwardLength: 768, expertCount: 8, expertsUsed: 2, seed: 5, vocabFile: join(root, 'vendor', 'llama.cpp', 'models', 'ggml-vocab-llama-spm.gguf') });
  }
  if (type === 'f32') return src;
  const out = join(work, `large-${type}.gguf`);
  if (!existsSync(out)) await quantizeModel(src, out, { type });
  return out;
}
