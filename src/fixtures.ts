/**
 * createRandomModel(): a GGUF of a llama.cpp architecture with seeded random weights and a real
 * tokenizer, written by llama.cpp's own model saver. For tests, demos of the plumbing and benchmarks —
 * never for conclusions about routing (random experts never learned to specialise).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { fromNative } from './errors.js';
import { type NativeRandomModelSpec, native, packageRoot } from './native.js';
import { checkOptionNames, expected, integer, nonEmptyString, optionsObject } from './validate.js';

export type RandomModelSpec = Omit<NativeRandomModelSpec, 'vocabFile' | 'gating'> & {
  /** A GGUF to take the tokenizer from. Default: llama.cpp's models/ggml-vocab-llama-spm.gguf (32,000 tokens). */
  vocabFile?: string;
  gating?: 'softmax' | 'sigmoid' | 'softmax-over-chosen';
  /**
   * A model without a tokenizer (tokenizer.ggml.model "no_vocab") of this many tokens, written the way
   * llama.cpp's tests/test-llama-archs.cpp writes its models (every token string empty). It is evaluated
   * from tokens; vocabFile must not be given.
   */
  noVocab?: number;
};

const SPEC_KEYS = [
  'arch', 'vocabFile', 'layers', 'embeddingLength', 'heads', 'headsKv', 'feedForwardLength', 'expertCount', 'expertsUsed',
  'sharedExperts', 'expertGroups', 'expertGroupsUsed', 'denseLeadingLayers', 'contextLength', 'seed', 'gating',
  'renormalize', 'expertWeightsScale', 'routerStd', 'noVocab',
] as const;

const GATING = { softmax: 1, sigmoid: 2, 'softmax-over-chosen': 3 } as const;

export function defaultVocabFile(name = 'llama-spm'): string {
  const dir = process.env.MOE_EVAL_LLAMA_CPP_DIR ?? join(packageRoot, 'vendor', 'llama.cpp');
  return join(dir, 'models', `ggml-vocab-${name}.gguf`);
}

export async function createRandomModel(path: string, spec: RandomModelSpec): Promise<string> {
  nonEmptyString(path, 'path');
  const o = optionsObject(spec, 'createRandomModel spec');
  checkOptionNames(o, SPEC_KEYS, 'createRandomModel()');
  nonEmptyString(o.arch, 'spec.arch');
  const noVocab = o.noVocab === undefined ? undefined : integer(o.noVocab, 'spec.noVocab', 1, 2 ** 31 - 1);
  if (noVocab !== undefined && o.vocabFile !== undefined) throw new TypeError(expected('no vocabFile with noVocab', 'spec.vocabFile', o.vocabFile));
  const vocabFile = noVocab !== undefined ? undefined : ((o.vocabFile as string | undefined) ?? defaultVocabFile());
  if (vocabFile !== undefined && !existsSync(vocabFile)) throw new TypeError(`Expected an existing GGUF vocab file for spec.vocabFile but ${vocabFile} does not exist`);
  const gating = o.gating === undefined ? undefined : GATING[o.gating as keyof typeof GATING];
  if (o.gating !== undefined && gating === undefined) throw new TypeError(`Expected 'softmax', 'sigmoid' or 'softmax-over-chosen' for spec.gating but received ${String(o.gating)}`);
  const out = resolve(path);
  try {
    await native().createRandomModel(out, {
      ...(o as unknown as NativeRandomModelSpec),
      ...(vocabFile === undefined ? {} : { vocabFile }),
      ...(gating === undefined ? {} : { gating }),
    });
  } catch (e) {
    throw fromNative(e);
  }
  return out;
}
