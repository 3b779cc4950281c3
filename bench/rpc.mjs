// ggml RPC: evaluate() with the demo model's layers on two `moe-eval rpc-server` processes on
// 127.0.0.1, against llama-perplexity --rpc over the same two servers (the peer, same run, alternating),
// and against a local evaluation (what the network hop costs). Loopback on one small machine measures
// the protocol and the client, not a network.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { evaluate, loadModel } from '../dist/index.js';
import { alternate, demoModel, demoText, line, requirePeer, root, runLlamaPerplexity } from './lib.mjs';

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startServer(threads) {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'rpc-server', '-p', String(port), '-t', String(threads)], { stdio: ['ignore', 'pipe', 'ignore'] });
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

export async function benchRpc({ model = demoModel, c = 256, b = 1024, t = 2, chunks = 32, rounds = 3 } = {}) {
  requirePeer();
  // layers run on one server after the other, so each server gets all `t` threads, as the local run has
  const servers = [await startServer(t), await startServer(t)];
  const endpoints = servers.map((s) => s.endpoint);
  try {
    let ours;
    let theirs;
    const args = ['-m', model, '-f', demoText, '-c', String(c), '-b', String(b), '-t', String(t), '--chunks', String(chunks)];
    const r = await alternate(
      rounds,
      async () => {
        theirs = await runLlamaPerplexity([...args, '--rpc', endpoints.join(',')]);
      },
      async () => {
        const m = await loadModel(model, { rpcServers: endpoints });
        ours = await evaluate(m, { file: demoText, contextSize: c, batchSize: b, threads: t, chunks });
        await m.dispose();
      },
    );
    const local = await alternate(
      rounds,
      async () => {
        const m = await loadModel(model);
        await evaluate(m, { file: demoText, contextSize: c, batchSize: b, threads: t, chunks });
        await m.dispose();
      },
      async () => {
        const m = await loadModel(model, { rpcServers: endpoints });
        await evaluate(m, { file: demoText, contextSize: c, batchSize: b, threads: t, chunks });
        await m.dispose();
      },
    );
    const speed = 1 / r.ratio;
    line(`RPC throughput vs llama-perplexity --rpc (2 servers, ${chunks} chunks)`, `${speed.toFixed(2)}× (llama-perplexity ${r.a.toFixed(0)} ms, moe-eval ${r.b.toFixed(0)} ms, median of ${rounds} pairs)`, { ok: speed >= 0.95, text: 'parity' });
    line('  same perplexity over RPC', `${ours.perplexity.toFixed(4)} vs ${theirs.perplexity.toFixed(4)}`, { ok: Math.abs(ours.perplexity - theirs.perplexity) < 1e-4 + 1e-6 * theirs.perplexity, text: 'equal to 4 decimals' });
    line('  RPC on loopback against local', `${local.ratio.toFixed(2)}× the local time (${local.a.toFixed(0)} → ${local.b.toFixed(0)} ms)`);
    return { speed, overRpc: local.ratio };
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchRpc();
