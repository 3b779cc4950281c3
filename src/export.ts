/**
 * exportModel(): bakes a routing into a new GGUF file, so the configuration found with moe-eval runs in
 * any llama.cpp-based program: expertScale multiplies ffn_down_exps (and its bias), gateScale
 * multiplies ffn_gate_inp (and its bias), experts sets <arch>.expert_used_count (an array when it
 * differs per layer), maskExperts removes the masked experts from the file (every per-expert tensor
 * sliced along its expert dimension, router rows and biases included, <arch>.expert_count updated:
 * the file is physically smaller and gives the logits of the runtime mask). The -ser threshold and
 * top-p have no GGUF form and are refused. Metadata overrides the model was loaded with (kvOverrides)
 * are written into the new file, so it loads as the model did.
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
  if (r.topP !== null) throw new TypeError('routing.topP cannot be stored in a GGUF file; export without it');
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
  const removal = expertRemoval(r, info);
  const removeExperts = removal?.tensors;
  for (const e of removal?.kv ?? []) {
    kv.splice(0, kv.length, ...kv.filter((x) => x.key !== e.key)); // the file's new counts replace an override's
    kv.push(e);
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
    await native().rewriteGguf(model.path, out, { kv, scale, ...(removeExperts ? { removeExperts } : {}) }, onProgress);
  } catch (e) {
    throw fromNative(e);
  }
  return { path: out, routing: r };
}

/**
 * The mask as a file: which experts leave each layer, and the key-values that change with them.
 * llama.cpp reads one expert count for all layers, so every MoE layer must lose the same number of
 * experts. With expert groups (DeepSeek-V3's n_group / topk_group) llama.cpp forms n_group groups of
 * consecutive experts; the file keeps the runtime's groups only when every group either loses all its
 * experts (the group is removed: n_group shrinks, topk_group is capped) or loses the same number c as
 * every other partly masked group, leaving at least 2 (llama.cpp scores a group by its top 2).
 */
function expertRemoval(
  r: ResolvedRouting,
  info: Model['info'],
): { tensors: { expertCount: number; layers: { layer: number; ids: number[] }[] }; kv: { key: string; type: 'u32'; value: number }[] } | null {
  const kv: { key: string; type: 'u32'; value: number }[] = [];
  const layers = info.moeLayers.map((f) => ({ layer: f.layer, ids: r.maskExperts[f.layer] ?? [] }));
  if (!layers.some((l) => l.ids.length > 0)) return null;
  const counts = layers.map((l) => l.ids.length);
  if (!counts.every((c) => c === counts[0])) {
    throw new RangeError(
      `routing.maskExperts removes ${counts.join(',')} experts in the MoE layers; llama.cpp reads one expert count (${info.architecture}.expert_count) for all layers, so a file can only remove the same number from each`,
    );
  }
  const N = info.expertCount;
  const left = N - counts[0]!;
  kv.push({ key: `${info.architecture}.expert_count`, type: 'u32', value: left });
  const G = info.expertGroups;
  if (G > 1) {
    const S = N / G;
    let groupsLeft = -1;
    for (const l of layers) {
      const lost = Array.from({ length: G }, (_, g) => l.ids.filter((id) => Math.floor(id / S) === g).length);
      const partial = lost.filter((c) => c > 0 && c < S);
      const equal = partial.length === 0 || (lost.every((c) => c > 0) && partial.every((c) => c === partial[0]) && S - partial[0]! >= 2);
      if (!equal) {
        throw new RangeError(
          `routing.maskExperts leaves layer ${l.layer}'s ${G} expert groups of ${S} with ${lost.map((c) => S - c).join(',')} experts; a file needs groups of one size ≥ 2 (llama.cpp forms equal groups and scores each by its top 2): mask whole groups, or the same number from every group leaving ≥ 2`,
        );
      }
      const g = lost.filter((c) => c < S).length;
      if (groupsLeft >= 0 && g !== groupsLeft) {
        throw new RangeError('routing.maskExperts removes a different number of whole expert groups per layer; llama.cpp reads one group count for all layers');
      }
      groupsLeft = g;
    }
    if (groupsLeft !== G) {
      // every group still standing is chosen when topk_group ≥ the groups left: that is no grouping at all
      const used = Math.min(info.expertGroupsUsed, groupsLeft);
      const grouped = used < groupsLeft && groupsLeft > 1;
      kv.push({ key: `${info.architecture}.expert_group_count`, type: 'u32', value: grouped ? groupsLeft : 1 });
      kv.push({ key: `${info.architecture}.expert_group_used_count`, type: 'u32', value: grouped ? used : 1 });
    }
  }
  return { tensors: { expertCount: N, layers }, kv };
}
