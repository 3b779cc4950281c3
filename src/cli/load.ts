/**
 * The one place the CLI turns flags into a loaded model and context sizes: every command that takes
 * -m/-ngl/--override-kv/--rpc/--no-mmap loads through loadModelFromArgs(), every command that takes
 * -c/-b/-ub/-t/-fa/-ctk/-ctv/--chunks passes contextFromArgs()/textFromArgs() on, so no flag is accepted and dropped.
 */
import { type LoadModelOptions, type Model, loadModel } from '../model.js';
import { native } from '../native.js';
import type { ContextSettings } from '../context.js';
import { cacheTypeFlag, flagName, flashAttentionFlag, intFlag, stringFlag } from './flags.js';
import { notice } from './progress.js';


export interface ModelArgs {
  model?: string | string[];
  'n-gpu-layers'?: string;
  'override-kv'?: string[];
  rpc?: string;
  mmap?: boolean;
}

/** loadModel() options from the model flags (validated by loadModel itself; errors are mapped to the flags). */
export function loadOptionsFromArgs(a: Record<string, unknown>, signal?: AbortSignal): LoadModelOptions {
  const gpuLayers = intFlag(a, 'n-gpu-layers');
  const rpc = stringFlag(a, 'rpc');
  const overrides = a['override-kv'] as string[] | undefined;
  if (gpuLayers !== undefined && gpuLayers !== 0 && !rpc && native().gpuDeviceCount() === 0) {
    notice(`${flagName('n-gpu-layers')} ${gpuLayers}: this build has no GPU backend, so every layer stays on the CPU (rebuild with MOE_EVAL_GPU=cuda|vulkan|metal, or use --rpc)`);
  }
  return {
    ...(gpuLayers === undefined ? {} : { gpuLayers }),
    ...(overrides?.length ? { kvOverrides: overrides } : {}),
    ...(rpc ? { rpcServers: rpc.split(',').map((s) => s.trim()) } : {}),
    ...(a.mmap === false ? { useMmap: false } : {}),
    ...(signal ? { signal } : {}),
  };
}

export async function loadModelFromArgs(a: Record<string, unknown>, signal?: AbortSignal, path?: string): Promise<Model> {
  const file = path ?? stringFlag(a, 'model');
  if (file === undefined) throw new TypeError(`Expected a model file: pass ${flagName('model')} FILE`);
  return loadModel(file, loadOptionsFromArgs(a, signal));
}

/** contextSize, batchSize, ubatchSize, threads, flashAttention, cacheTypeK, cacheTypeV from -c, -b, -ub, -t, -fa, -ctk, -ctv (only those given). */
export function contextFromArgs(a: Record<string, unknown>): ContextSettings {
  const o: ContextSettings = {};
  const c = intFlag(a, 'ctx-size');
  const b = intFlag(a, 'batch-size');
  const ub = intFlag(a, 'ubatch-size');
  const t = intFlag(a, 'threads');
  if (c !== undefined) o.contextSize = c;
  if (b !== undefined) o.batchSize = b;
  if (ub !== undefined) o.ubatchSize = ub;
  if (t !== undefined) o.threads = t;
  const fa = flashAttentionFlag(a);
  if (fa !== undefined) o.flashAttention = fa;
  const ctk = cacheTypeFlag(a, 'cache-type-k');
  if (ctk !== undefined) o.cacheTypeK = ctk;
  const ctv = cacheTypeFlag(a, 'cache-type-v');
  if (ctv !== undefined) o.cacheTypeV = ctv;
  return o;
}

/** The text to evaluate (-f FILE or -f - for standard input) and --chunks. */
export async function textFromArgs(a: Record<string, unknown>, required = true): Promise<{ file?: string; text?: string; chunks?: number }> {
  const chunks = intFlag(a, 'chunks');
  const file = stringFlag(a, 'file');
  const out: { file?: string; text?: string; chunks?: number } = chunks === undefined ? {} : { chunks };
  if (file === undefined) {
    if (required) throw new TypeError(`Expected a text file: pass ${flagName('file')} FILE (or -f - for standard input)`);
    return out;
  }
  if (file !== '-') return { ...out, file };
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return { ...out, text: Buffer.concat(parts).toString('utf8') };
}
