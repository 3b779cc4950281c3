#!/usr/bin/env node
// Compile src/ → dist/ with the project's TypeScript. A consumer installing the published package gets
// dist/ prebuilt and no TypeScript; then there is nothing to do.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
} catch {
  if (existsSync(join(root, 'dist', 'index.js'))) process.exit(0);
  process.stderr.write('[build-ts] typescript is not installed and dist/ is missing\n');
  process.exit(1);
}
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
process.exit(r.status ?? 1);
