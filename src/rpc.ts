/**
 * startRpcServer(): serve this machine's ggml devices to other processes (moe-eval's `rpcServers`, or
 * llama.cpp's --rpc), so a model bigger than one machine's memory can be evaluated across several.
 * The RPC protocol has no authentication: anything but loopback gets a loud warning.
 */
import { availableParallelism } from 'node:os';

import { fromNative } from './errors.js';
import { native } from './native.js';
import { checkOptionNames, integer, nonEmptyString, optionsObject } from './validate.js';

export interface RpcServerOptions {
  host?: string;
  port?: number;
  threads?: number;
  /** Called once with the warning when the server is reachable from other machines. */
  onWarning?: (message: string) => void;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Runs until the process ends; the promise rejects if the server cannot start or stops. */
export async function startRpcServer(options: RpcServerOptions = {}): Promise<void> {
  const o = optionsObject(options, 'startRpcServer options');
  checkOptionNames(o, ['host', 'port', 'threads', 'onWarning'], 'startRpcServer()');
  const host = o.host === undefined ? '127.0.0.1' : nonEmptyString(o.host, 'host');
  const port = o.port === undefined ? 50052 : integer(o.port, 'port', 1, 65535);
  // llama.cpp's rpc-server default: half the hardware threads
  const threads = o.threads === undefined ? Math.max(1, Math.floor(availableParallelism() / 2)) : integer(o.threads, 'threads', 1, 1024);
  if (!isLoopback(host)) {
    const warn = (o.onWarning as ((m: string) => void) | undefined) ?? ((m: string) => process.emitWarning(m));
    warn(`moe-eval RPC server listening on ${host}:${port}: the ggml RPC protocol has NO authentication or encryption; anyone who can reach this port can run computations and read the data sent to it. Use it only on a trusted network.`);
  }
  try {
    await native().startRpcServer(`${host}:${port}`, threads);
  } catch (e) {
    throw fromNative(e);
  }
}
