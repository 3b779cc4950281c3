// `moe-eval rpc-server` child processes on 127.0.0.1, for test/rpc.test.mjs and bench/rpc.mjs.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { root } from './fixtures.mjs';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/**
 * Starts `moe-eval rpc-server` with `threads` threads and resolves with { child, endpoint } once it
 * listens. The child is pushed to `children` as soon as it exists, so that the caller can kill it even
 * if it never comes up.
 */
export async function startRpcServer({ threads = 1, children = [] } = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'rpc-server', '-p', String(port), '-t', String(threads)], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('transport')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`rpc-server exited ${code}: ${out}`)));
  });
  return { child, endpoint: `127.0.0.1:${port}` };
}
