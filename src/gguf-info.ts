/**
 * readGgufInfo(): a GGUF file's metadata without loading the model (ggml's own gguf reader, no tensor
 * data): its key-values (arrays by type and length), architecture, vocabulary size, parameters and
 * tensor bytes. Cheap enough to check several models against each other before any evaluation.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

import { MoeEvalError, fromNative } from './errors.js';
import { type NativeGgufInfo, native } from './native.js';
import { nonEmptyString } from './validate.js';

export interface GgufInfo {
  path: string;
  /** general.architecture ('' when absent). */
  architecture: string;
  /** Entries of tokenizer.ggml.tokens (0 when absent). */
  vocabSize: number;
  parameters: number;
  /** Bytes of tensor data: what llama.cpp reports as the model size. */
  tensorBytes: number;
  /** Bits per weight as llama.cpp computes it (tensor bytes × 8 / parameters). */
  bitsPerWeight: number;
  kv: NativeGgufInfo['kv'];
}

export async function readGgufInfo(path: string): Promise<GgufInfo> {
  const abs = resolve(nonEmptyString(path, 'path'));
  try {
    if (!(await stat(abs)).isFile()) throw new MoeEvalError('ERR_FILE', `Expected a GGUF file but ${abs} is not a regular file`);
  } catch (e) {
    if (e instanceof MoeEvalError) throw e;
    throw new MoeEvalError('ERR_FILE', `Model file not found: ${abs}`);
  }
  let raw: NativeGgufInfo;
  try {
    raw = await native().readGgufInfo(abs);
  } catch (e) {
    throw fromNative(e);
  }
  const arch = raw.kv['general.architecture'];
  const tokens = raw.kv['tokenizer.ggml.tokens'];
  return {
    path: abs,
    architecture: typeof arch?.value === 'string' ? arch.value : '',
    vocabSize: tokens?.length ?? 0,
    parameters: raw.parameters,
    tensorBytes: raw.tensorBytes,
    bitsPerWeight: raw.parameters > 0 ? (raw.tensorBytes * 8) / raw.parameters : 0,
    kv: raw.kv,
  };
}
