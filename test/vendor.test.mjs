// The vendored llama.cpp: pinned, materialized from the npm bundle, patched, never committed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { root } from './helpers/fixtures.mjs';

const pin = JSON.parse(readFileSync(join(root, 'vendor', 'llama.cpp.json'), 'utf8'));
const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();

describe('vendor', () => {
  test('the pin names the package, version, integrity and commit', () => {
    assert.equal(pin.package, 'node-llama-cpp');
    assert.equal(pin.version, '3.21.1');
    assert.match(pin.integrity, /^sha512-[A-Za-z0-9+/=]{88}$/);
    assert.equal(pin.commit, '80fb11ac73e66d89eae2c6a91d8a77428fa733ed');
  });

  test('vendor/llama.cpp is at the pinned commit and is not tracked by this repository', () => {
    if (process.env.MOE_EVAL_LLAMA_CPP_DIR) return; // a user-supplied tree has its own history
    assert.equal(execFileSync('git', ['-C', join(root, 'vendor', 'llama.cpp'), 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(), pin.commit);
    assert.equal(git('ls-files', 'vendor/llama.cpp'), '');
  });

  test('every patch is numbered, explains itself, and is applied', () => {
    const patches = readdirSync(join(root, 'vendor', 'patches')).filter((f) => f.endsWith('.patch'));
    assert.ok(patches.length >= 1);
    for (const p of patches) {
      assert.match(p, /^\d{4}-[a-z0-9-]+\.patch$/);
      const text = readFileSync(join(root, 'vendor', 'patches', p), 'utf8');
      assert.match(text, /^Subject: /m);
      assert.match(text, /^Why: /m);
    }
    const out = execFileSync(process.execPath, [join(root, 'scripts', 'vendor-llama.mjs'), '--check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(out, '');
  });

  test('the routing patch stays small and only touches build_moe_ffn', () => {
    const text = readFileSync(join(root, 'vendor', 'patches', '0001-moe-routing-hook.patch'), 'utf8');
    const added = text.split('\n').filter((l) => l.startsWith('+') && !l.startsWith('+++'));
    assert.ok(added.length <= 15, `${added.length} added lines`);
    assert.deepEqual([...text.matchAll(/^diff --git a\/(\S+)/gm)].map((m) => m[1]), ['src/llama-graph.cpp']);
  });

  test('a tree packed by gpu-bundle (no .git) is used only with the pin and patches it was packed with', async () => {
    const { STAMP_FILE, bundleStamp } = await import('../scripts/vendor-llama.mjs');
    const tree = join(tmpdir(), `moe-eval-bundled-${process.pid}`);
    mkdirSync(join(tree, 'src'), { recursive: true });
    writeFileSync(join(tree, 'src', 'llama-graph.cpp'), '');
    const vendor = () =>
      execFileSync(process.execPath, [join(root, 'scripts', 'vendor-llama.mjs')], { env: { ...process.env, MOE_EVAL_LLAMA_CPP_DIR: tree }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      writeFileSync(join(tree, STAMP_FILE), JSON.stringify(bundleStamp()));
      vendor(); // accepted as it is: no git, no patching
      const stale = bundleStamp();
      stale.patches[Object.keys(stale.patches)[0]] = '0'.repeat(64);
      writeFileSync(join(tree, STAMP_FILE), JSON.stringify(stale));
      assert.throws(vendor, (e) => e.status === 1 && /other patches than vendor\/patches has now/.test(e.stderr));
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });
});
