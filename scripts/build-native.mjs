#!/usr/bin/env node
// Build the native addon (and, with --peers, llama.cpp's llama-perplexity and llama-tokenize from the
// same objects) with cmake-js into build/. Runs scripts/vendor-llama.mjs first.
//
// Environment:
//   MOE_EVAL_GPU=cuda|metal|vulkan|none   GPU backend (default none; llama.cpp enables Metal on Apple silicon itself)
//   MOE_EVAL_PORTABLE=1                   no -march=native
//   MOE_EVAL_LLAMA_CPP_DIR=/path          build against another llama.cpp checkout (patched in place)
//   MOE_EVAL_SANITIZE=address             AddressSanitizer build (scripts/asan-test.sh)
//   MOE_EVAL_CUDA_ARCHITECTURES=90        CUDA architectures (default: llama.cpp's choice)
//   MOE_EVAL_CMAKE_DEFS="A=1 B=2"          extra CMake cache entries
//   MOE_EVAL_BUILD_JOBS=N                 parallel compile jobs (default: all cores)
//   MOE_EVAL_SKIP_NATIVE=1                do nothing (e.g. a packaging step that ships a prebuilt build/)
//   MOE_EVAL_BUILD_DIR=build-asan         build somewhere else than build/ (load it with MOE_EVAL_ADDON=…/Release/moe_eval.node)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const env = process.env;

if (env.MOE_EVAL_SKIP_NATIVE === '1') process.exit(0);

const step = (cmd, argv) => {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    process.stderr.write(`[build] failed: ${cmd} ${argv.join(' ')}\n`);
    process.exit(r.status ?? 1);
  }
};

step(process.execPath, [join(root, 'scripts', 'vendor-llama.mjs')]);

const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const buildDir = resolve(root, env.MOE_EVAL_BUILD_DIR || 'build');
const common = ['-d', root, '-O', buildDir, '--parallel', String(Number(env.MOE_EVAL_BUILD_JOBS) || availableParallelism())];
const defs = [
  `--CDMOE_EVAL_GPU=${env.MOE_EVAL_GPU || 'none'}`,
  `--CDMOE_EVAL_PORTABLE=${env.MOE_EVAL_PORTABLE === '1' ? 'ON' : 'OFF'}`,
  `--CDMOE_EVAL_SANITIZE=${env.MOE_EVAL_SANITIZE || ''}`,
  ...(env.MOE_EVAL_CUDA_ARCHITECTURES ? [`--CDCMAKE_CUDA_ARCHITECTURES=${env.MOE_EVAL_CUDA_ARCHITECTURES}`] : []),
  // extra NAME=VALUE cache entries, space-separated (e.g. where a CUDA library lives)
  ...(env.MOE_EVAL_CMAKE_DEFS ? env.MOE_EVAL_CMAKE_DEFS.split(/\s+/).filter(Boolean).map((d) => `--CD${d}`) : []),
];

// cmake-js `build` configures when needed; the defs are applied on (re)configure.
step(process.execPath, [cmakeJs, 'build', ...common, ...defs, '--target', 'moe_eval']);
if (args.includes('--peers')) step(process.execPath, [cmakeJs, 'build', ...common, ...defs, '--target', 'peers']);

if (!existsSync(join(buildDir, 'Release', 'moe_eval.node'))) {
  process.stderr.write(`[build] ${join(buildDir, 'Release', 'moe_eval.node')} was not produced\n`);
  process.exit(1);
}
