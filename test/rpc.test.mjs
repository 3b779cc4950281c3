// ggml RPC: a model split across two `moe-eval rpc-server` processes on 127.0.0.1 gives the local
// perplexity; a server killed mid-evaluation is a clean rejection, not a hang or a crash.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { evaluate, loadModel } from '../dist/index.js';
import { root } from './helpers/fixtures.mjs';
import { freePort, startRpcServer } from './helpers/rpc-servers.mjs';

const model = join(root, 'models', 'demo', 'moe-demo.gguf');
const text = join(root, 'models', 'demo', 'heldout.txt');
const servers = [];
after(() => servers.forEach((s) => s.kill('SIGKILL')));

const startServer = () => startRpcServer({ threads: 1, children: servers });

describe('ggml RPC', () => {
  test('the demo model split across two RPC servers gives the local perplexity', async () => {
    const [a, b] = [await startServer(), await startServer()];
    const opts = { file: text, contextSize: 256, batchSize: 1024, threads: 2, chunks: 8 };
    const local = await loadModel(model);
    const l = await evaluate(local, opts);
    await local.dispose();
    const remote = await loadModel(model, { rpcServers: [a.endpoint, b.endpoint] });
    const r = await evaluate(remote, opts);
    await remote.dispose();
    assert.ok(Math.abs(r.perplexity / l.perplexity - 1) <= 1e-4, `RPC ${r.perplexity} vs local ${l.perplexity}`);
  });

  test('an unreachable server is a rejected load', async () => {
    const port = await freePort();
    await assert.rejects(loadModel(model, { rpcServers: [`127.0.0.1:${port}`] }), { code: 'ERR_RPC', message: /failed to connect/ });
    await assert.rejects(loadModel(model, { rpcServers: ['no-port'] }), TypeError);
  });

  test('killing a server mid-evaluation rejects the evaluation; the process survives', async () => {
    const [a, b] = [await startServer(), await startServer()];
    const m = await loadModel(model, { rpcServers: [a.endpoint, b.endpoint] });
    const started = Date.now();
    await assert.rejects(
      evaluate(m, { file: text, contextSize: 256, batchSize: 256, threads: 2, onProgress: (p) => p.chunksDone === 2 && b.child.kill('SIGKILL') }),
      { code: 'ERR_RPC' },
    );
    assert.ok(Date.now() - started < 60000);
    await m.dispose();
  });
});
