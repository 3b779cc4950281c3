// ggml RPC: evaluate() with the demo model's layers on two `moe-eval rpc-server` processes on
// 127.0.0.1, against llama-perplexity --rpc over the same two servers (the peer, same run, alternating),
// and against a local evaluation (what the network hop costs). Loopback on one small machine measures
// the protocol and the client, not a network.
import { evaluate, loadModel } from '../dist/index.js';
import { startRpcServer } from '../test/helpers/rpc-servers.mjs';
import { alternate, demoModel, demoText, line, requirePeer, runLlamaPerplexity } from './lib.mjs';

export async function benchRpc({ model = demoModel, c = 256, b = 1024, t = 2, chunks = 32, rounds = 3 } = {}) {
  requirePeer();
  // layers run on one server after the other, so each server gets all `t` threads, as the local run has
  const children = [];
  const servers = [await startRpcServer({ threads: t, children }), await startRpcServer({ threads: t, children })];
  const endpoints = servers.map((s) => s.endpoint);
  try {
    let ours;
    let theirs;
    const evalOpts = { file: demoText, contextSize: c, batchSize: b, threads: t, chunks };
    const evaluateOn = async (options) => {
      const m = await loadModel(model, options);
      const result = await evaluate(m, evalOpts);
      await m.dispose();
      return result;
    };
    const overRpc = async () => (ours = await evaluateOn({ rpcServers: endpoints }));
    const args = ['-m', model, '-f', demoText, '-c', String(c), '-b', String(b), '-t', String(t), '--chunks', String(chunks), '--rpc', endpoints.join(',')];
    const r = await alternate(rounds, async () => (theirs = await runLlamaPerplexity(args)), overRpc);
    const local = await alternate(rounds, () => evaluateOn({}), overRpc);
    const speed = 1 / r.ratio;
    line(`RPC throughput vs llama-perplexity --rpc (2 servers, ${chunks} chunks)`, `${speed.toFixed(2)}× (llama-perplexity ${r.a.toFixed(0)} ms, moe-eval ${r.b.toFixed(0)} ms, median of ${rounds} pairs)`, { ok: speed >= 0.95, text: 'parity' });
    line('  same perplexity over RPC', `${ours.perplexity.toFixed(4)} vs ${theirs.perplexity.toFixed(4)}`, { ok: Math.abs(ours.perplexity - theirs.perplexity) < 1e-4 + 1e-6 * theirs.perplexity, text: 'equal to 4 decimals' });
    line('  RPC on loopback against local', `${local.ratio.toFixed(2)}× the local time (${local.a.toFixed(0)} → ${local.b.toFixed(0)} ms)`);
    return { speed, overRpc: local.ratio };
  } finally {
    for (const child of children) child.kill('SIGTERM');
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchRpc();
