/**
 * The CLI's flags, defined once and shared by every command that takes them, with llama.cpp's
 * spellings. Numbers arrive as the text the user typed and are parsed here, so an error quotes it
 * ("Expected an integer for -c (--ctx-size) but received "abc""). What a flag means is the API's
 * business: these functions only turn text into the API's typed options.
 */
import type { Argv } from 'yargs';

import { KV_CACHE_TYPES, type KvCacheType } from '../context.js';

/** The flag a user would type, for messages: "-c (--ctx-size)". */
export const FLAG_NAMES: Readonly<Record<string, string>> = {
  model: '-m (--model)',
  'n-gpu-layers': '-ngl (--n-gpu-layers)',
  'override-kv': '--override-kv',
  rpc: '--rpc',
  'ctx-size': '-c (--ctx-size)',
  'batch-size': '-b (--batch-size)',
  'ubatch-size': '-ub (--ubatch-size)',
  threads: '-t (--threads)',
  'flash-attn': '-fa (--flash-attn)',
  'cache-type-k': '-ctk (--cache-type-k)',
  'cache-type-v': '-ctv (--cache-type-v)',
  chunks: '--chunks',
  file: '-f (--file)',
};

export function flagName(key: string): string {
  return FLAG_NAMES[key] ?? `--${key}`;
}

function expectedFlag(what: string, key: string, text: unknown): TypeError {
  return new TypeError(`Expected ${what} for ${flagName(key)} but received ${JSON.stringify(String(text))}`);
}

/** A flag's value; given several times, the last one counts (as in llama.cpp's tools). */
function last(a: Record<string, unknown>, key: string): unknown {
  const v = a[key];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** An optional integer flag (`undefined` when not given). */
export function intFlag(a: Record<string, unknown>, key: string): number | undefined {
  const v = last(a, key);
  if (v === undefined) return undefined;
  const t = String(v).trim();
  if (!/^[+-]?\d+$/.test(t)) throw expectedFlag('an integer', key, v);
  return Number(t);
}

/** An optional number flag. */
export function numberFlag(a: Record<string, unknown>, key: string): number | undefined {
  const v = last(a, key);
  if (v === undefined) return undefined;
  const t = String(v).trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) throw expectedFlag('a number', key, v);
  return Number(t);
}

/** An optional string flag. */
export function stringFlag(a: Record<string, unknown>, key: string): string | undefined {
  const v = last(a, key);
  return v === undefined ? undefined : String(v);
}

/** -m, -ngl, --override-kv, --rpc, --no-mmap: what loadModel() takes (src/cli/load.ts reads them). */
export const modelFlags = <T>(y: Argv<T>) =>
  y
    .option('model', { alias: 'm', type: 'string', demandOption: true, describe: 'GGUF model file' })
    .option('n-gpu-layers', { alias: ['ngl', 'gpu-layers'], type: 'string', describe: 'layers to offload to the GPU (-1: all); needs a GPU build or --rpc' })
    .option('override-kv', { type: 'string', array: true, describe: "KEY=TYPE:VALUE, as llama.cpp's --override-kv (repeatable)" })
    .option('rpc', { type: 'string', describe: 'ggml RPC servers host:port,… to place the layers on (llama.cpp --rpc)' })
    .option('mmap', { type: 'boolean', default: true, describe: 'memory-map the model file (--no-mmap reads it into memory, as llama.cpp)' });

/** -fa: llama.cpp's spellings (common/arg.cpp is_truthy / is_falsey / is_autoy) → flashAttention. */
export function flashAttentionFlag(a: Record<string, unknown>): 'auto' | 'on' | 'off' | undefined {
  const v = last(a, 'flash-attn');
  if (v === undefined) return undefined;
  const t = String(v).trim();
  if (['on', 'enabled', 'true', '1'].includes(t)) return 'on';
  if (['off', 'disabled', 'false', '0'].includes(t)) return 'off';
  if (['auto', '-1'].includes(t)) return 'auto';
  throw expectedFlag('on, off or auto', 'flash-attn', v);
}

/** -ctk / -ctv: a KV cache type by llama.cpp's name. */
export function cacheTypeFlag(a: Record<string, unknown>, key: 'cache-type-k' | 'cache-type-v'): KvCacheType | undefined {
  const v = last(a, key);
  if (v === undefined) return undefined;
  const t = String(v).trim();
  if (!(KV_CACHE_TYPES as readonly string[]).includes(t)) throw expectedFlag(`one of ${KV_CACHE_TYPES.join(', ')}`, key, v);
  return t as KvCacheType;
}

/** -c, -b, -ub, -t, -fa, -ctk, -ctv: the sizes and settings of an evaluation context (llama-perplexity's meaning). */
export const contextFlags = <T>(y: Argv<T>) =>
  y
    .option('ctx-size', { alias: 'c', type: 'string', describe: 'tokens per chunk (default 512)' })
    .option('batch-size', { alias: 'b', type: 'string', describe: 'logical batch: b / c chunks per batch (default 2048)' })
    .option('ubatch-size', { alias: 'ub', type: 'string', describe: 'physical batch (default 512)' })
    .option('threads', { alias: 't', type: 'string', describe: "CPU threads (default: llama.cpp's rule, the physical cores)" })
    .option('flash-attn', { alias: 'fa', type: 'string', describe: "flash attention: on, off or auto (default auto: where the backend supports it); numbers equal llama.cpp's at the same -fa" })
    .option('cache-type-k', { alias: 'ctk', type: 'string', describe: `KV cache type for K: ${KV_CACHE_TYPES.join(', ')} (default f16)` })
    .option('cache-type-v', { alias: 'ctv', type: 'string', describe: 'KV cache type for V (default f16; a quantized one needs flash attention)' });

/** -f and --chunks: the text to evaluate. */
export const textFlags = <T>(y: Argv<T>) =>
  y
    .option('file', { alias: 'f', type: 'string', describe: "text file ('-' reads standard input)" })
    .option('chunks', { type: 'string', describe: 'evaluate at most this many chunks' });

/** --kld-top-k K: the KL-divergence base a command writes is compact, the top K log-probabilities per token (docs/kld-compact.md). */
export const kldTopKFlag = <T>(y: Argv<T>) =>
  y.option('kld-top-k', { type: 'string', describe: "write the KL-divergence base compact: the top K log-probabilities per token (default: llama.cpp's full format; reading detects the format)" });

export const jsonFlag = <T>(y: Argv<T>) => y.option('json', { type: 'boolean', default: false, describe: 'print the result alone as JSON on stdout (progress and notices go to stderr)' });

/**
 * The routing flags (README "Routing grammar"). Each takes one value, or several (separated by spaces,
 * or the flag repeated) in the commands that evaluate a grid of routings.
 */
export const routingFlags = <T>(y: Argv<T>) =>
  y
    .option('experts', { type: 'string', array: true, describe: 'experts per token: N, one per layer a,b,c, or layers i-j:N;k:M' })
    .option('expert-scale', { type: 'string', array: true, describe: 'routed-output scale: a number, per layer, or none|seed-uniform|seed-zipf:S|uniform|zipf:S|calibrated' })
    .option('gate-scale', { type: 'string', array: true, describe: 'router-logit scale: a number, per layer, or layers i-j:X' })
    .option('ser', { type: 'string', array: true, describe: 'Kmin,t: keep Kmin experts, drop any other below t × the top weight (ik_llama.cpp -ser); none: off' })
    .option('top-p', { type: 'string', array: true, describe: 'per token, the fewest experts whose router probabilities reach p (at most --experts); none: off' })
    .option('mask-experts', { type: 'string', array: true, describe: 'experts removed for this run: ids a,b in every MoE layer, or per layer i:a,b;j:c; none: no mask' })
    .option('profile', { type: 'string', describe: 'routing profile from `moe-eval calibrate` (for --expert-scale calibrated)' });
