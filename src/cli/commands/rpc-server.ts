/** moe-eval rpc-server: serve this machine's devices to `--rpc` clients (ggml RPC). */
import type { Argv } from 'yargs';

import { startRpcServer } from '../../rpc.js';

export const command = 'rpc-server';
export const describe = "serve this machine's CPU/GPU to other moe-eval or llama.cpp processes (ggml RPC; no authentication)";
export const builder = (y: Argv) =>
  y
    .option('host', { alias: 'H', type: 'string', default: '127.0.0.1', describe: 'address to listen on (anything but loopback is reachable by others: no authentication)' })
    .option('port', { alias: 'p', type: 'number', default: 50052 })
    .option('threads', { alias: 't', type: 'number' })
    .example('$0 rpc-server -p 50052', 'then elsewhere: moe-eval perplexity -m model.gguf -f text.txt --rpc 192.168.1.5:50052');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args): Promise<void> {
  process.stderr.write(`moe-eval rpc-server on ${a.host}:${a.port} (Ctrl-C to stop)\n`);
  await startRpcServer({
    host: a.host,
    port: a.port,
    ...(a.threads ? { threads: a.threads } : {}),
    onWarning: (m) => process.stderr.write(`\n*** WARNING ***\n${m}\n\n`),
  });
}
