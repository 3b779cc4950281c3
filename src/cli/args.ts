/** Shared llama.cpp-style flags and their translation to API options. */
import type { Argv } from 'yargs';

import { RoutingProfile } from '../profile.js';
import type { Routing } from '../routing.js';

export const modelFlags = <T>(y: Argv<T>) =>
  y
    .option('model', { alias: 'm', type: 'string', demandOption: true, describe: 'GGUF model file' })
    .option('n-gpu-layers', { alias: ['ngl', 'gpu-layers'], type: 'number', default: 0, describe: 'layers to offload to the GPU (-1: all)' })
    .option('override-kv', { type: 'string', array: true, describe: 'KEY=TYPE:VALUE as llama.cpp (repeatable)' })
    .option('rpc', { type: 'string', describe: 'ggml RPC servers host:port,… to place the layers on (llama.cpp --rpc)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the result alone as JSON on stdout' });

/** The sizes of an evaluation context (llama-perplexity's -c, -b, -ub, -t). */
export const contextFlags = <T>(y: Argv<T>) =>
  y
    .option('ctx-size', { alias: 'c', type: 'number', default: 512, describe: 'tokens per chunk' })
    .option('batch-size', { alias: 'b', type: 'number', default: 2048, describe: 'logical batch (b / c chunks per batch)' })
    .option('ubatch-size', { alias: 'ub', type: 'number', default: 512, describe: 'physical batch' })
    .option('threads', { alias: 't', type: 'number', describe: 'CPU threads (default: all cores)' });

export const evalFlags = <T>(y: Argv<T>) =>
  contextFlags(y)
    .option('file', { alias: 'f', type: 'string', describe: "text file ('-' reads stdin)" })
    .option('chunks', { type: 'number', describe: 'evaluate at most this many chunks' });

export const routingFlags = <T>(y: Argv<T>) =>
  y
    .option('experts', { type: 'string', describe: 'experts per token: N or one per layer (a,b,c)' })
    .option('expert-scale', { type: 'string', describe: 'routed-output scale: number, per-layer list, or seed-uniform|seed-zipf:S|uniform|zipf:S' })
    .option('gate-scale', { type: 'string', describe: 'router-logit scale: number or per-layer list' })
    .option('profile', { type: 'string', describe: "routing profile from `moe-eval calibrate` (for --expert-scale calibrated)" })
    .option('ser', { type: 'string', describe: 'Kmin,t: keep Kmin experts, drop others below t × the top weight (ik_llama.cpp -ser)' });

function numberList(value: string, flag: string): number | number[] {
  const parts = value.split(',').map((s) => s.trim());
  const nums = parts.map((p) => Number(p));
  if (parts.some((p) => p === '') || nums.some((n) => Number.isNaN(n))) {
    throw new TypeError(`Expected a number or a comma-separated list of numbers for --${flag} but received "${value}"`);
  }
  return nums.length === 1 ? nums[0]! : nums;
}

export async function routingFromArgs(a: { experts?: string; 'expert-scale'?: string; 'gate-scale'?: string; ser?: string; profile?: string }): Promise<Routing> {
  const r: Routing = {};
  if (a.profile !== undefined) r.profile = await RoutingProfile.load(a.profile);
  if (a.experts !== undefined) r.experts = numberList(a.experts, 'experts');
  if (a['expert-scale'] !== undefined) {
    const v = a['expert-scale'];
    r.expertScale = /^[a-z]/i.test(v) ? v : numberList(v, 'expert-scale');
  }
  if (a['gate-scale'] !== undefined) r.gateScale = numberList(a['gate-scale'], 'gate-scale');
  if (a.ser !== undefined) {
    const m = /^(\d+),([0-9.]+)$/.exec(a.ser);
    if (!m) throw new TypeError(`Expected Kmin,t (e.g. 1,0.5) for --ser but received "${a.ser}"`);
    r.minExperts = Number(m[1]);
    r.minWeightRatio = Number(m[2]);
  }
  return r;
}

export async function readTextArg(file: string | undefined): Promise<{ file?: string; text?: string }> {
  if (file === undefined) throw new TypeError('Expected a text file: pass -f FILE (or -f - for stdin)');
  if (file !== '-') return { file };
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return { text: Buffer.concat(chunks).toString('utf8') };
}
