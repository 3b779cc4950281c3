// The CLI as a user runs it from a pipe: a child process of dist/cli/main.js, colour off.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { root } from './fixtures.mjs';

export const cli = join(root, 'dist', 'cli', 'main.js');

/** Runs `moe-eval ...args` with `stdin` (default: empty) → { code, stdout, stderr }. */
export function runCli(args, stdin) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}
