/**
 * KL-divergence base files, in two formats; a reader tells them apart by their first 8 bytes.
 *
 * llama.cpp's format (llama-perplexity --kl-divergence-base), the default:
 *   "_logits_" | n_ctx u32 | n_vocab i32 | n_chunk i32 | tokens i32[n_ctx·n_chunk] |
 *   per chunk, per scored token (n_ctx - 1 - n_ctx/2 of them): f32 scale, f32 min log-prob, u16[2·⌈n_vocab/2⌉] steps
 * A file made by llama-perplexity works here and one made here works there.
 *
 * The compact format (docs/kld-compact.md; `kldTopK`, `--kld-top-k K`):
 *   "_kldtop_" | version u32 (1) | n_ctx u32 | n_vocab i32 | n_chunk i32 | K u32 | S u32 | record bytes u32 (8 + 8K + 8S) |
 *   seed u32 | tokens i32[n_ctx·n_chunk] | per chunk, per scored token: f32 log p(next token) | f32 log tail mass |
 *   i32 ids[K] | f32 log p[K] | i32 tail sample ids[S] | f32 tail sample log p[S]
 */
import { open } from 'node:fs/promises';

import { MoeEvalError } from './errors.js';
import { optionalInteger } from './validate.js';

export interface KldBaseHeader {
  path: string;
  /** 'llama': llama.cpp's format (every log-probability); 'compact': the top `topK` per token. */
  format: 'llama' | 'compact';
  /** Log-probabilities kept per token in a compact base; 0 for llama.cpp's format. */
  topK: number;
  /** Tail samples per token in a compact base; 0 for llama.cpp's format. */
  tailSamples: number;
  contextSize: number;
  vocabSize: number;
  chunks: number;
  tokens: Int32Array;
  /** Byte offset of the first chunk's log-probabilities. */
  dataOffset: number;
}

const LLAMA_MAGIC = '_logits_';
const COMPACT_MAGIC = '_kldtop_';
const COMPACT_VERSION = 1;
const COMPACT_HEADER = 40;

export function rowSlots(vocabSize: number): number {
  return 2 * Math.floor((vocabSize + 1) / 2) + 4;
}

/** Bytes per scored token of a compact base keeping `topK` log-probabilities and `tailSamples` samples. */
export function compactRecordBytes(topK: number, tailSamples: number): number {
  return 8 + 8 * topK + 8 * tailSamples;
}

export function baseFileSize(contextSize: number, vocabSize: number, chunks: number, topK = 0, tailSamples = 0): number {
  const scored = contextSize - 1 - Math.floor(contextSize / 2);
  if (topK > 0) return COMPACT_HEADER + 4 * contextSize * chunks + chunks * scored * compactRecordBytes(topK, tailSamples);
  return 20 + 4 * contextSize * chunks + 2 * chunks * scored * rowSlots(vocabSize);
}

/** `kldTopK`, validated: the log-probabilities a compact base keeps per token (undefined: llama.cpp's format). @internal */
export function kldTopKOption(value: unknown): number | undefined {
  return optionalInteger(value, 'kldTopK', 1, 1 << 20);
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
    const head = Buffer.alloc(COMPACT_HEADER);
    const { bytesRead } = await fh.read(head, 0, COMPACT_HEADER, 0);
    const magic = bytesRead >= 8 ? head.toString('latin1', 0, 8) : '';
    let format: KldBaseHeader['format'];
    let contextSize: number;
    let vocabSize: number;
    let chunks: number;
    let topK = 0;
    let tailSamples = 0;
    let tokensAt: number;
    if (magic === LLAMA_MAGIC && bytesRead >= 20) {
      format = 'llama';
      contextSize = head.readUInt32LE(8);
      vocabSize = head.readInt32LE(12);
      chunks = head.readInt32LE(16);
      tokensAt = 20;
    } else if (magic === COMPACT_MAGIC && bytesRead >= COMPACT_HEADER) {
      format = 'compact';
      const version = head.readUInt32LE(8);
      if (version !== COMPACT_VERSION) {
        throw new MoeEvalError('ERR_KLD_BASE', `${path} is a compact KL-divergence base of version ${version}; this moe-eval reads version ${COMPACT_VERSION}`);
      }
      contextSize = head.readUInt32LE(12);
      vocabSize = head.readInt32LE(16);
      chunks = head.readInt32LE(20);
      topK = head.readUInt32LE(24);
      tailSamples = head.readUInt32LE(28);
      const recordBytes = head.readUInt32LE(32);
      if (topK < 1 || topK > vocabSize || tailSamples > 1 << 20 || (topK === vocabSize && tailSamples > 0) || recordBytes !== compactRecordBytes(topK, tailSamples)) {
        throw new MoeEvalError('ERR_KLD_BASE', `${path} has an implausible compact header: top ${topK} and ${tailSamples} tail samples of a vocabulary of ${vocabSize}, records of ${recordBytes} bytes`);
      }
      tokensAt = COMPACT_HEADER;
    } else {
      throw new MoeEvalError('ERR_KLD_BASE', `${path} is not a KL-divergence base file (expected the "_logits_" header of llama-perplexity --kl-divergence-base, or moe-eval's compact "_kldtop_")`);
    }
    if (contextSize < 4 || contextSize > 1 << 24 || vocabSize < 1 || vocabSize > 1 << 24 || chunks < 1 || chunks > 1 << 24) {
      throw new MoeEvalError('ERR_KLD_BASE', `${path} has an implausible header: context ${contextSize}, vocabulary ${vocabSize}, chunks ${chunks}`);
    }
    const expectedSize = baseFileSize(contextSize, vocabSize, chunks, topK, tailSamples);
    if (size !== expectedSize) {
      throw new MoeEvalError('ERR_KLD_BASE', `${path} should be ${expectedSize} bytes for context ${contextSize}, vocabulary ${vocabSize}${topK ? `, top ${topK}` : ''} and ${chunks} chunks, but is ${size}`);
    }
    const tokens = new Int32Array(contextSize * chunks);
    await fh.read(Buffer.from(tokens.buffer), 0, tokens.byteLength, tokensAt);
    return { path, format, topK, tailSamples, contextSize, vocabSize, chunks, tokens, dataOffset: tokensAt + tokens.byteLength };
  } finally {
    await fh.close();
  }
}
