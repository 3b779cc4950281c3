/**
 * KL-divergence base files in llama.cpp's format (llama-perplexity --kl-divergence-base):
 *   "_logits_" | n_ctx u32 | n_vocab i32 | n_chunk i32 | tokens i32[n_ctx·n_chunk] |
 *   per chunk, per scored token (n_ctx - 1 - n_ctx/2 of them): f32 scale, f32 min log-prob, u16[2·⌈n_vocab/2⌉] steps
 * A file made by llama-perplexity works here and one made here works there.
 */
import { open } from 'node:fs/promises';

import { MoeEvalError } from './errors.js';

export interface KldBaseHeader {
  path: string;
  contextSize: number;
  vocabSize: number;
  chunks: number;
  tokens: Int32Array;
  /** Byte offset of the first chunk's log-probabilities. */
  dataOffset: number;
}

export function rowSlots(vocabSize: number): number {
  return 2 * Math.floor((vocabSize + 1) / 2) + 4;
}

export function baseFileSize(contextSize: number, vocabSize: number, chunks: number): number {
  const scored = contextSize - 1 - Math.floor(contextSize / 2);
  return 20 + 4 * contextSize * chunks + 2 * chunks * scored * rowSlots(vocabSize);
}

export async function readKldBaseHeader(path: string): Promise<KldBaseHeader> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new MoeEvalError('ERR_FILE', `Cannot read KL-divergence base ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(20);
    const { bytesRead } = await fh.read(head, 0, 20, 0);
    if (bytesRead < 20 || head.toString('latin1', 0, 8) !== '_logits_') {
      throw new MoeEvalError('ERR_KLD_BASE', `${path} is not a KL-divergence base file (expected the "_logits_" header of llama-perplexity --kl-divergence-base)`);
    }
    const contextSize = head.readUInt32LE(8);
    const vocabSize = head.readInt32LE(12);
    const chunks = head.readInt32LE(16);
    if (contextSize < 4 || contextSize > 1 << 24 || vocabSize < 1 || vocabSize > 1 << 24 || chunks < 1 || chunks > 1 << 24) {
      throw new MoeEvalError('ERR_KLD_BASE', `${path} has an implausible header: context ${contextSize}, vocabulary ${vocabSize}, chunks ${chunks}`);
    }
    const expectedSize = baseFileSize(contextSize, vocabSize, chunks);
    if (size !== expectedSize) {
      throw new MoeEvalError('ERR_KLD_BASE', `${path} should be ${expectedSize} bytes for context ${contextSize}, vocabulary ${vocabSize} and ${chunks} chunks, but is ${size}`);
    }
    const tokens = new Int32Array(contextSize * chunks);
    await fh.read(Buffer.from(tokens.buffer), 0, tokens.byteLength, 20);
    return { path, contextSize, vocabSize, chunks, tokens, dataOffset: 20 + tokens.byteLength };
  } finally {
    await fh.close();
  }
}
