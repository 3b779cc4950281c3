/** quantizeModel(): llama.cpp's own quantizer (what llama-quantize runs), with progress. */
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { mkdir, stat } from 'node:fs/promises';

import { MoeEvalError, fromNative } from './errors.js';
import { native } from './native.js';
import { checkOptionNames, expected, integer, nonEmptyString, optionalBoolean, optionalFunction, optionsObject } from './validate.js';

/** llama_ftype values by llama-quantize's names (lower case). */
export const QUANT_TYPES: Readonly<Record<string, number>> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q2_k: 10, q3_k_s: 11, q3_k_m: 12, q3_k_l: 13,
  q4_k_s: 14, q4_k_m: 15, q5_k_s: 16, q5_k_m: 17, q6_k: 18, q2_k_s: 21, iq4_nl: 25, iq4_xs: 30, bf16: 32, tq1_0: 36, tq2_0: 37, mxfp4_moe: 38,
};

/** Types llama.cpp only makes with an importance matrix (not supported here). */
const NEED_IMATRIX = ['iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq2_m', 'iq3_xxs', 'iq3_xs', 'iq3_s', 'iq3_m'];

export function quantTypeId(type: string): number {
  const t = String(type).toLowerCase();
  if (NEED_IMATRIX.includes(t)) throw new RangeError(`Quantization type ${type} needs an importance matrix, which moe-eval does not compute; choose one of ${Object.keys(QUANT_TYPES).join(', ')}`);
  const id = QUANT_TYPES[t];
  if (id === undefined) throw new RangeError(expected(`one of ${Object.keys(QUANT_TYPES).join(', ')}`, 'quantization type', type));
  return id;
}

export interface QuantizeOptions {
  type: string;
  threads?: number;
  /** Allow quantizing an already quantized file (quality loss); default false. */
  allowRequantize?: boolean;
  onProgress?: (fraction: number) => void;
}

export async function quantizeModel(src: string, dst: string, options: QuantizeOptions): Promise<string> {
  nonEmptyString(src, 'src');
  nonEmptyString(dst, 'dst');
  const o = optionsObject(options, 'quantizeModel options');
  checkOptionNames(o, ['type', 'threads', 'allowRequantize', 'onProgress'], 'quantizeModel()');
  const ftype = quantTypeId(o.type as string);
  const threads = o.threads === undefined ? availableParallelism() : integer(o.threads, 'threads', 1, 1024);
  const allowRequantize = optionalBoolean(o.allowRequantize, 'allowRequantize') ?? false;
  const onProgress = optionalFunction<(p: number) => void>(o.onProgress, 'onProgress');
  const from = resolve(src);
  const to = resolve(dst);
  if (from === to) throw new TypeError('quantizeModel() must write a new file, not the one it reads');
  try {
    if (!(await stat(from)).isFile()) throw new Error('not a file');
  } catch {
    throw new MoeEvalError('ERR_FILE', `Model file not found: ${from}`);
  }
  await mkdir(dirname(to), { recursive: true });
  try {
    await native().quantizeModel(from, to, { ftype, threads, allowRequantize }, onProgress);
  } catch (e) {
    throw fromNative(e);
  }
  return to;
}
