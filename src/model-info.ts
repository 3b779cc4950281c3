/** Model facts as moe-eval reports them (Model.info), derived from the addon's raw info. */
import type { NativeLayerFacts, NativeModelInfo } from './native.js';

export type Gating = NativeLayerFacts['gating'];

/** The facts Model.info passes on from the addon as they are. */
type NativeFacts = Pick<NativeModelInfo, 'architecture' | 'name' | 'description' | 'layers' | 'embeddingLength' | 'vocabSize' | 'trainingContextLength' | 'sizeBytes' | 'parameters' | 'addBos' | 'expertGroups' | 'expertGroupsUsed'>;

export interface ModelInfo extends NativeFacts {
  path: string;
  /** llama.cpp's file type name, e.g. 'F16', 'Q4_K_M' ('(guessed)' when the file does not say). */
  fileType: string;
  /** Weight tensors (they occupy graph slots too). */
  tensors: number;
  bitsPerWeight: number;
  /** N: routed experts per MoE layer (0 for a dense model); GGUF's expert_count. */
  expertCount: number;
  /** n: experts used per token as trained (GGUF's expert_used_count); a routing's `experts` changes it per context. */
  expertsUsed: number;
  /** The gating function llama.cpp applies to the router logits. */
  gating: Gating;
  /** Whether the chosen top-k weights are renormalized to sum to 1 (Mixtral: yes; the seed assumed no). */
  renormalized: boolean;
  /** Expert-weights scale the model applies (1 when none). */
  expertWeightsScale: number;
  /** Always-on shared experts: not routed, so routing options never scale them. */
  sharedExperts: number;
  /** Indices of the layers that route through experts. */
  moeLayers: NativeLayerFacts[];
  /** The metadata overrides the model was loaded with (KEY=TYPE:VALUE, llama.cpp's --override-kv syntax). */
  kvOverrides: string[];
  /**
   * Where llama.cpp placed the weights and so runs the layer: the device name (see devices()) of each
   * repeating layer and of the output layer, as load_tensors assigned them (-ngl / gpuLayers, the split
   * across devices, --rpc). The input layer (token embeddings) always stays on the CPU.
   */
  placement: { layers: string[]; output: string };
}

const FTYPES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K', 11: 'Q3_K_S', 12: 'Q3_K_M',
  13: 'Q3_K_L', 14: 'Q4_K_S', 15: 'Q4_K_M', 16: 'Q5_K_S', 17: 'Q5_K_M', 18: 'Q6_K', 19: 'IQ2_XXS', 20: 'IQ2_XS',
  21: 'Q2_K_S', 22: 'IQ3_XS', 23: 'IQ3_XXS', 24: 'IQ1_S', 25: 'IQ4_NL', 26: 'IQ3_S', 27: 'IQ3_M', 28: 'IQ2_S',
  29: 'IQ2_M', 30: 'IQ4_XS', 31: 'IQ1_M', 32: 'BF16', 36: 'TQ1_0', 37: 'TQ2_0', 38: 'MXFP4_MOE',
};

export function fileTypeName(ftype: number): string {
  const guessed = (ftype & 1024) !== 0;
  const name = FTYPES[ftype & ~1024] ?? `ftype ${ftype & ~1024}`;
  return guessed ? `${name} (guessed)` : name;
}

export function toModelInfo(path: string, raw: NativeModelInfo, kvOverrides: string[] = []): ModelInfo {
  const first = raw.moeLayers[0];
  return {
    path,
    architecture: raw.architecture,
    name: raw.name,
    description: raw.description,
    layers: raw.layers,
    embeddingLength: raw.embeddingLength,
    vocabSize: raw.vocabSize,
    trainingContextLength: raw.trainingContextLength,
    fileType: fileTypeName(raw.fileType),
    sizeBytes: raw.sizeBytes,
    parameters: raw.parameters,
    tensors: raw.tensors,
    bitsPerWeight: raw.parameters > 0 ? (raw.sizeBytes * 8) / raw.parameters : 0,
    addBos: raw.addBos,
    expertCount: raw.expertCount,
    expertsUsed: raw.expertsUsed,
    gating: first?.gating ?? 'none',
    renormalized: first?.renormalized ?? false,
    expertWeightsScale: first && first.expertWeightsScale !== 0 ? first.expertWeightsScale : 1,
    sharedExperts: raw.sharedExperts,
    expertGroups: raw.expertGroups,
    expertGroupsUsed: raw.expertGroupsUsed,
    moeLayers: raw.moeLayers,
    kvOverrides,
    placement: { layers: [...raw.placement.layers], output: raw.placement.output },
  };
}
