/** moe-eval rpc-server: serve this machine's devices to `--rpc` clients (ggml RPC). Ctrl-C or SIGTERM stops it. */
import type { Argv } from 'yargs';

import { startRpcServer } from '../../rpc.js';
import { intFlag, stringFlag } from '../flags.js';

export const command = 'rpc-server';
export const describe = "serve this machine's CPU/GPU to other moe-eval or llama.cpp processes (ggml RPC; no authentication)";
export const builder = (y: Argv) =>
  y
    .option('host', { alias: 'H', type: 'string', default: '127.0.0.1', describe: 'address to listen on (anything but loopback is reachable by others: no authentication)' })
    .option('port', { alias: 'p', type: 'string', describe: 'port to listen on (default 50052)' })
    .option('threads', { alias: 't', type: 'string', describe: "CPU threads of the served CPU device (default: half the hardware threads, as llama.cpp's rpc-server)" })
    .example('$0 rpc-server -p 50052', 'then elsewhere: moe-eval perplexity -m model.gguf -f text.txt --rpc 192.168.1.5:50052');

/** startRpcServer()'s option names → this command's flags, for messages. */
export const flagNames = { port: '-p (--port)', host: '-H (--host)' };

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const port = intFlag(a, 'port') ?? 50052;
  const threads = intFlag(a, 'threads');
  const host = stringFlag(a, 'host')!;
  // the server runs on a native thread that never returns: the interrupt ends the process
  signal.addEventListener('abort', () => {
    process.stderr.write('moe-eval rpc-server: stopped\n');
    process.exit(130);
  });
  const server = startRpcServer({ host, port, ...(threads === undefined ? {} : { threads }), onWarning: (m) => process.stderr.write(`\n*** WARNING ***\n${m}\n\n`) });
  process.stderr.write(`moe-eval rpc-server on ${host}:${port} (Ctrl-C to stop)\n`);
  await server;
}
