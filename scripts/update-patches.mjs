#!/usr/bin/env node
// Regenerate vendor/patches/*.patch from an edited vendor/llama.cpp (the workflow of ollama's vendored
// llama.cpp: edit the tree, regenerate the patches, commit them).
//
//   node scripts/update-patches.mjs                      rewrite every patch from the tree
//   node scripts/update-patches.mjs --new 0004-name "Subject line"
//                                                         also write a new patch for changed files no patch owns
//   node scripts/update-patches.mjs --check              say what would change, write nothing (exit 1 if anything would)
//
// Each patch owns the files its diff touches; a patch is rewritten as its header (everything before the
// first "diff --git", i.e. the Subject, the Why and the "---") followed by `git diff <pinned commit> --
// <its files>` of the tree. A file two patches touch cannot be split between them and is refused; a changed
// file no patch owns is listed (give --new to put it in a new patch). Applying stays idempotent: run
// `npm run vendor:check` afterwards. See README "Updating llama.cpp".
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { llamaDir } from './vendor-llama.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pin = JSON.parse(readFileSync(join(root, 'vendor', 'llama.cpp.json'), 'utf8'));
const patchDir = join(root, 'vendor', 'patches');
const dir = llamaDir();
const args = process.argv.slice(2);
const check = args.includes('--check');
const newAt = args.indexOf('--new');
const fail = (msg) => {
  process.stderr.write(`[patches] error: ${msg}\n`);
  process.exit(1);
};
const git = (...a) => execFileSync('git', ['-C', dir, ...a], { encoding: 'utf8', maxBuffer: 256 << 20 });

const head = git('rev-parse', 'HEAD').trim();
if (head !== pin.commit) fail(`${dir} is at ${head}, not the pinned ${pin.commit}: the patches are made against the pin`);

const filesOf = (text) => [...text.matchAll(/^diff --git a\/(\S+) b\/\S+$/gm)].map((m) => m[1]);
const patches = readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort().map((name) => {
  const text = readFileSync(join(patchDir, name), 'utf8');
  const at = text.indexOf('diff --git');
  if (at < 0) fail(`${name} has no diff`);
  return { name, header: text.slice(0, at), files: filesOf(text), text };
});

const owner = new Map();
for (const p of patches) {
  for (const f of p.files) {
    if (owner.has(f)) fail(`${f} is changed by both ${owner.get(f)} and ${p.name}; one file, one patch`);
    owner.set(f, p.name);
  }
}

const changed = git('diff', '--name-only', pin.commit).split('\n').filter(Boolean);
const untracked = git('ls-files', '--others', '--exclude-standard').split('\n').filter(Boolean);
if (untracked.length) process.stderr.write(`[patches] note: untracked files in the tree are not patched: ${untracked.join(', ')} (git add -N them to include)\n`);
const orphans = changed.filter((f) => !owner.has(f));

const outputs = [];
for (const p of patches) {
  const diff = git('diff', pin.commit, '--', ...p.files);
  if (diff.trim() === '') {
    process.stderr.write(`[patches] ${p.name}: its files are unchanged in the tree now (an empty patch); remove the file if that is intended\n`);
    continue;
  }
  outputs.push({ name: p.name, text: p.header + diff });
}
if (orphans.length) {
  if (newAt < 0) fail(`changed files no patch owns: ${orphans.join(', ')}; add them to a new patch with --new NNNN-name "Subject"`);
  const name = args[newAt + 1];
  const subject = args[newAt + 2];
  if (!name || !/^\d{4}-[\w-]+$/.test(name) || !subject) fail('--new needs NNNN-name and a "Subject" (e.g. --new 0004-fix-x "ggml: fix x")');
  const header = `Subject: [PATCH ${name.slice(0, 4)}] ${subject}\n\nWhy: (say why llama.cpp needs this and where the logic lives)\n\nUpstream: llama.cpp ${pin.commit} (${pin.package}@${pin.version})\n---\n`;
  outputs.push({ name: `${name}.patch`, text: header + git('diff', pin.commit, '--', ...orphans) });
}

let differs = 0;
for (const o of outputs) {
  const path = join(patchDir, o.name);
  let old = '';
  try {
    old = readFileSync(path, 'utf8');
  } catch {
    /* new */
  }
  if (old === o.text) continue;
  differs++;
  process.stderr.write(`[patches] ${o.name}: ${check ? 'would change' : old ? 'rewritten' : 'written'}\n`);
  if (!check) writeFileSync(path, o.text);
}
if (differs === 0) process.stderr.write('[patches] every patch already matches the tree\n');
if (check && differs) process.exit(1);
