/**
 * exportModel(): bakes a routing into a new GGUF file, so the configuration found with moe-eval runs in
 * any llama.cpp-based program: expertScale multiplies ffn_down_exps (and its bias), gateScale
 * multiplies ffn_gate_inp (and its bias), experts sets <arch>.expert_used_count (an array when it
 * differs per layer). The -ser threshold has no GGUF form and is refused. Metadata overrides the model
 * was loaded with (kvOverrides) are written into the new file, so it loads as the model did.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import { fromNative } from './errors.js';
import { type Model, parseKvOverride } from './model.js';
import { readGgufInfo } from './gguf-info.js';
import { native } from './native.js';
import { type ResolvedRouting, type Routing, resolveRouting } from './routing.js';
import { checkOptionNames, nonEmptyString, optionalFunction, optionsObject } from './validate.js';

export interface ExportOptions {
  routing: Routing;
  onProgress?: (progress: number) => void;
}

export async function exportModel(model: Model, outPath: string, options: ExportOptions): Promise<{ path: string; routing: ResolvedRouting }> {
  nonEmptyString(outPath, 'outPath');
  const o = optionsObject(options, 'exportModel options');
  checkOptionNames(o, ['routing', 'onProgress'], 'exportModel()');
  const onProgress = optionalFunction<(p: number) => void>(o.onProgress, 'onProgress');
  const info = model.info;
  const r = resolveRouting(o.routing as Routing, info);
  if (r.minWeightRatio !== null) throw new TypeError('routing.minWeightRatio (-ser) cannot be stored in a GGUF file; export without it');
  const out = resolve(outPath);
  if (out === resolve(model.path)) throw new TypeError('exportModel() must write a new file, not the model it reads');

  // the model as it was loaded: its --override-kv values are written into the new file
  const kv: { key: string; type: 'u32' | 'i32' | 'f32' | 'bool' | 'str' | 'u32[]'; value: number | number[] | boolean | string }[] = [];
  if (info.kvOverrides.length) {
    const file = await readGgufInfo(model.path);
    for (const spec of info.kvOverrides) {
      const o = parseKvOverride(spec);
      const had = file.kv[o.key]?.type;
      if (o.type === 'int') kv.push({ key: o.key, type: had === 'i32' || (had === undefined && (o.value as number) < 0) ? 'i32' : 'u32', value: o.value as number });
      else if (o.type === 'float') kv.push({ key: o.key, type: 'f32', value: o.value as number });
      else kv.push({ key: o.key, type: o.type, value: o.value });
    }
  }
  if (r.experts.length && !r.experts.every((e) => e === info.expertsUsed)) {
    const moe = info.moeLayers.map((f) => r.experts[f.layer]!);
    if (!moe.every((e) => e === moe[0])) {
      // A per-layer expert_used_count array loads, but most architectures build every layer with the
      // first layer's count and llama.cpp then aborts: no file can carry this routing safely.
      throw new TypeError(`Per-layer expert counts (${moe.join(',')}) have no portable GGUF form; export one count for all layers`);
    }
    const key = `${info.architecture}.expert_used_count`;
    kv.splice(0, kv.length, ...kv.filter((e) => e.key !== key)); // the routing's count replaces an override's
    kv.push({ key, type: 'u32', value: moe[0]! });
  }
  const scale: { name: string; factor: number; optional: boolean }[] = [];
  for (const f of info.moeLayers) {
    const il = f.layer;
    const es = r.expertScale[il]!;
    const gs = r.gateScale[il]!;
    if (es !== 1) {
      scale.push({ name: `blk.${il}.ffn_down_exps.weight`, factor: es, optional: false });
      scale.push({ name: `blk.${il}.ffn_down_exps.bias`, factor: es, optional: true });
    }
    if (gs !== 1) {
      scale.push({ name: `blk.${il}.ffn_gate_inp.weight`, factor: gs, optional: false });
      scale.push({ name: `blk.${il}.ffn_gate_inp.bias`, factor: gs, optional: true });
    }
  }
  await mkdir(dirname(out), { recursive: true });
  try {
    await native().rewriteGguf(model.path, out, { kv, scale }, onProgress);
  } catch (e) {
    throw fromNative(e);
  }
  return { path: out, routing: r };
}
