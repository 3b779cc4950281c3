/**
 * quantizeModel(): llama.cpp's own quantizer with the parameters llama-quantize builds from its flags
 * (tools/quantize/quantize.cpp): type, --imatrix, --tensor-type, --output-tensor-type,
 * --token-embedding-type, --pure, --allow-requantize, --leave-output-tensor, --include/--exclude-weights.
 * The output is byte-identical to llama-quantize's for the same inputs (test/quantize.test.mjs).
 */
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { mkdir, stat } from 'node:fs/promises';

import { MoeEvalError, fromNative } from './errors.js';
import { type NativeQuantizeOptions, native } from './native.js';
import { checkOptionNames, expected, integer, nonEmptyString, optionalBoolean, optionalFunction, optionsObject } from './validate.js';

/** llama_ftype values by llama-quantize's type names (lower case; QUANT_OPTIONS in tools/quantize/quantize.cpp, aliases included). */
export const QUANT_TYPES: Readonly<Record<string, number>> = {
  q1_0: 40, q2_0: 41, q4_0: 2, q4_1: 3, mxfp4_moe: 38, q5_0: 8, q5_1: 9,
  iq2_xxs: 19, iq2_xs: 20, iq2_s: 28, iq2_m: 29, iq1_s: 24, iq1_m: 31, tq1_0: 36, tq2_0: 37,
  q2_k: 10, q2_k_s: 21, iq3_xxs: 23, iq3_s: 26, iq3_m: 27, q3_k: 12, iq3_xs: 22, q3_k_s: 11, q3_k_m: 12, q3_k_l: 13,
  iq4_nl: 25, iq4_xs: 30, q4_k: 15, q4_k_s: 14, q4_k_m: 15, q5_k: 17, q5_k_s: 16, q5_k_m: 17, q6_k: 18, q8_0: 7,
  f16: 1, bf16: 32, f32: 0, copy: 0,
};

/**
 * ggml tensor types by name (lower case), for --tensor-type, --output-tensor-type and
 * --token-embedding-type (llama-quantize matches ggml_type_name() case-insensitively).
 */
export const TENSOR_TYPES: Readonly<Record<string, number>> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q5_0: 6, q5_1: 7, q8_0: 8, q8_1: 9, q2_k: 10, q3_k: 11, q4_k: 12, q5_k: 13, q6_k: 14, q8_k: 15,
  iq2_xxs: 16, iq2_xs: 17, iq3_xxs: 18, iq1_s: 19, iq4_nl: 20, iq3_s: 21, iq2_s: 22, iq4_xs: 23, i8: 24, i16: 25, i32: 26, i64: 27,
  f64: 28, iq1_m: 29, bf16: 30, tq1_0: 34, tq2_0: 35, mxfp4: 39, nvfp4: 40, q1_0: 41, q2_0: 42,
};

/**
 * Types whose tensors llama.cpp refuses to make without an importance matrix (llama-quant.cpp
 * tensor_requires_imatrix: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, and Q2_K inside a Q2_K_S
 * file), and the file types whose mixes use them.
 */
const TENSOR_TYPES_NEED_IMATRIX = ['iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs'];
const FILE_TYPES_NEED_IMATRIX = ['iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq2_m', 'iq3_xxs', 'q2_k_s'];

/** The llama_ftype of a llama-quantize type name (or its number, as llama-quantize accepts). */
export function quantTypeId(type: string): number {
  const t = String(type).toLowerCase();
  const id = QUANT_TYPES[t] ?? (/^\d+$/.test(t) && Object.values(QUANT_TYPES).includes(Number(t)) ? Number(t) : undefined);
  if (id === undefined) throw new RangeError(expected(`one of ${Object.keys(QUANT_TYPES).join(', ')}`, 'quantization type', type));
  return id;
}

/** Whether llama.cpp needs an importance matrix to quantize to this llama-quantize type. */
export function quantTypeNeedsImatrix(type: string): boolean {
  const id = quantTypeId(type);
  return FILE_TYPES_NEED_IMATRIX.some((t) => QUANT_TYPES[t] === id);
}

function tensorTypeId(type: unknown, name: string): number {
  const id = typeof type === 'string' ? TENSOR_TYPES[type.toLowerCase()] : undefined;
  if (id === undefined) throw new RangeError(expected(`a ggml type (${Object.keys(TENSOR_TYPES).join(', ')})`, name, type));
  return id;
}

export interface TensorTypeOverride {
  /** A regular expression matched against tensor names (llama-quantize lower-cases it), e.g. 'ffn_gate_inp' or 'attn_.*'. */
  pattern: string;
  /** A ggml type name, e.g. 'q8_0'. */
  type: string;
}

export interface QuantizeOptions {
  /** A llama-quantize type: q4_k_m, q2_k, iq2_xxs, … (QUANT_TYPES), or 'copy'. */
  type: string;
  threads?: number;
  /** An importance matrix file (llama-imatrix's GGUF or legacy .dat): --imatrix. Needed by the IQ1/IQ2/IQ3_XXS types and q2_k_s. */
  imatrix?: string;
  /** Per-tensor types, each `REGEX=TYPE` (--tensor-type) or { pattern, type }; the first pattern found in a name wins. */
  tensorTypes?: readonly (string | TensorTypeOverride)[];
  /** The type of output.weight (--output-tensor-type). */
  outputType?: string;
  /** The type of the token embeddings (--token-embedding-type). */
  tokenEmbeddingType?: string;
  /** Every tensor in `type`, no k-quant mixture (--pure). */
  pure?: boolean;
  /** Allow quantizing an already quantized file (quality loss; --allow-requantize); default false. */
  allowRequantize?: boolean;
  /** Leave output.weight un(re)quantized (--leave-output-tensor). */
  leaveOutputTensor?: boolean;
  /** Use the importance matrix only for tensors whose names contain one of these (--include-weights). */
  includeWeights?: readonly string[];
  /** Do not use the importance matrix for tensors whose names contain one of these (--exclude-weights). */
  excludeWeights?: readonly string[];
  onProgress?: (fraction: number) => void;
}

const QUANTIZE_OPTIONS = ['type', 'threads', 'imatrix', 'tensorTypes', 'outputType', 'tokenEmbeddingType', 'pure', 'allowRequantize', 'leaveOutputTensor', 'includeWeights', 'excludeWeights', 'onProgress'];

/** `REGEX=TYPE` as llama-quantize's --tensor-type parses it (the name lower-cased). */
export function parseTensorType(spec: string | TensorTypeOverride, name = 'tensorTypes[]'): { pattern: string; type: string; id: number } {
  let pattern: string;
  let type: unknown;
  if (typeof spec === 'string') {
    const at = spec.indexOf('=');
    if (at <= 0 || at === spec.length - 1) throw new RangeError(expected('NAME=TYPE (e.g. ffn_gate_inp=q8_0)', name, spec));
    pattern = spec.slice(0, at);
    type = spec.slice(at + 1);
  } else if (spec && typeof spec === 'object' && typeof spec.pattern === 'string' && spec.pattern.length > 0) {
    pattern = spec.pattern;
    type = spec.type;
  } else {
    throw new TypeError(expected("'NAME=TYPE' or { pattern, type }", name, spec));
  }
  pattern = pattern.toLowerCase();
  try {
    new RegExp(pattern);
  } catch {
    throw new RangeError(expected('a regular expression', `${name} pattern`, pattern));
  }
  const id = tensorTypeId(type, `${name} type`);
  return { pattern, type: String(type).toLowerCase(), id };
}

function stringList(value: unknown, name: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((x) => typeof x === 'string' && x.length > 0)) throw new TypeError(expected('an array of non-empty strings', name, value));
  return value as string[];
}

export async function quantizeModel(src: string, dst: string, options: QuantizeOptions): Promise<string> {
  nonEmptyString(src, 'src');
  nonEmptyString(dst, 'dst');
  const o = optionsObject(options, 'quantizeModel options');
  checkOptionNames(o, QUANTIZE_OPTIONS, 'quantizeModel()');
  const typeName = String(o.type).toLowerCase();
  const ftype = quantTypeId(o.type as string);
  const threads = o.threads === undefined ? availableParallelism() : integer(o.threads, 'threads', 1, 1024);
  const imatrix = o.imatrix === undefined ? undefined : nonEmptyString(o.imatrix, 'imatrix');
  if (o.tensorTypes !== undefined && !Array.isArray(o.tensorTypes)) throw new TypeError(expected('an array of NAME=TYPE strings', 'tensorTypes', o.tensorTypes));
  const tensorTypes = ((o.tensorTypes as (string | TensorTypeOverride)[] | undefined) ?? []).map((t, i) => parseTensorType(t, `tensorTypes[${i}]`));
  const outputTensorType = o.outputType === undefined ? undefined : tensorTypeId(o.outputType, 'outputType');
  const tokenEmbeddingType = o.tokenEmbeddingType === undefined ? undefined : tensorTypeId(o.tokenEmbeddingType, 'tokenEmbeddingType');
  const includeWeights = stringList(o.includeWeights, 'includeWeights');
  const excludeWeights = stringList(o.excludeWeights, 'excludeWeights');
  if (includeWeights && excludeWeights) throw new TypeError('Expected includeWeights or excludeWeights for quantizeModel() but received both (llama-quantize accepts one)');
  if (imatrix === undefined) {
    if (quantTypeNeedsImatrix(typeName)) {
      throw new RangeError(`Quantization type ${o.type} needs an importance matrix: pass imatrix (llama-quantize --imatrix), e.g. one written by imatrix(model, { file, out })`);
    }
    const needy = tensorTypes.find((t) => TENSOR_TYPES_NEED_IMATRIX.includes(t.type));
    if (needy) throw new RangeError(`Tensor type ${needy.type} (tensorTypes ${needy.pattern}=${needy.type}) needs an importance matrix: pass imatrix (llama-quantize --imatrix)`);
  }
  const allowRequantize = optionalBoolean(o.allowRequantize, 'allowRequantize') ?? false;
  const pure = optionalBoolean(o.pure, 'pure') ?? false;
  const leaveOutputTensor = optionalBoolean(o.leaveOutputTensor, 'leaveOutputTensor') ?? false;
  const onProgress = optionalFunction<(p: number) => void>(o.onProgress, 'onProgress');
  const from = resolve(src);
  const to = resolve(dst);
  if (from === to) throw new TypeError('quantizeModel() must write a new file, not the one it reads');
  for (const [file, what] of [[from, 'Model'], ...(imatrix ? [[resolve(imatrix), 'Importance matrix']] : [])] as [string, string][]) {
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
    } catch {
      throw new MoeEvalError('ERR_FILE', `${what} file not found: ${file}`);
    }
  }
  await mkdir(dirname(to), { recursive: true });
  const nativeOptions: NativeQuantizeOptions = {
    ftype,
    threads,
    allowRequantize,
    pure,
    onlyCopy: typeName === 'copy',
    leaveOutputTensor,
    ...(outputTensorType === undefined ? {} : { outputTensorType }),
    ...(tokenEmbeddingType === undefined ? {} : { tokenEmbeddingType }),
    ...(tensorTypes.length ? { tensorTypes: tensorTypes.map((t) => ({ pattern: t.pattern, type: t.id })) } : {}),
    // quantize.imatrix.file records the path as given, as llama-quantize does
    ...(imatrix ? { imatrix: resolve(imatrix), imatrixName: imatrix } : {}),
    ...(includeWeights ? { includeWeights } : {}),
    ...(excludeWeights ? { excludeWeights } : {}),
  };
  try {
    await native().quantizeModel(from, to, nativeOptions, onProgress);
  } catch (e) {
    throw fromNative(e);
  }
  return to;
}
