/** moe-eval quantize: llama.cpp's quantizer (llama-quantize) through the addon. */
import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Argv } from 'yargs';

import { formatBitsPerWeight, formatMiB } from '../../format.js';
import { readGgufInfo } from '../../gguf-info.js';
import { QUANT_TYPES, quantizeModel } from '../../quantize.js';
import { intFlag, jsonFlag, stringFlag } from '../flags.js';
import { printJson } from '../output.js';
import { progress } from '../progress.js';

export const command = 'quantize <input> <output> <type>';
export const describe = 'quantize a GGUF (llama-quantize types: ' + Object.keys(QUANT_TYPES).join(', ') + ')';
export const builder = (y: Argv) =>
  jsonFlag(y)
    .positional('input', { type: 'string', demandOption: true, describe: 'the GGUF to quantize' })
    .positional('output', { type: 'string', demandOption: true, describe: 'the quantized GGUF to write (its folder is created)' })
    .positional('type', { type: 'string', demandOption: true, describe: 'a llama-quantize type, e.g. q4_k_m' })
    .option('threads', { alias: 't', type: 'string', describe: 'threads (default: all hardware threads, as llama-quantize)' })
    .option('allow-requantize', { type: 'boolean', default: false, describe: 'allow quantizing an already quantized file (loses quality)' })
    .option('imatrix', { type: 'string', describe: 'importance matrix (llama-imatrix or moe-eval imatrix; GGUF or .dat): needed by the IQ1/IQ2/IQ3_XXS types and q2_k_s' })
    .option('tensor-type', { type: 'string', array: true, describe: 'REGEX=TYPE: the type of the tensors whose names match (repeatable; llama-quantize --tensor-type)' })
    .option('output-tensor-type', { type: 'string', describe: 'the type of output.weight' })
    .option('token-embedding-type', { type: 'string', describe: 'the type of the token embeddings' })
    .option('pure', { type: 'boolean', default: false, describe: 'every tensor in TYPE, no k-quant mixture' })
    .option('leave-output-tensor', { type: 'boolean', default: false, describe: 'leave output.weight as it is' })
    .option('include-weights', { type: 'string', array: true, describe: 'use the importance matrix only for tensors whose names contain this (repeatable)' })
    .option('exclude-weights', { type: 'string', array: true, describe: 'do not use the importance matrix for tensors whose names contain this (repeatable)' })
    .example('$0 quantize model-f16.gguf model-q4_k_m.gguf q4_k_m', "llama-quantize's default recipe for q4_k_m")
    .example('$0 quantize model-f16.gguf model-iq2.gguf iq2_xxs --imatrix imatrix.gguf --tensor-type attn=q6_k', 'an IQ quant from an importance matrix, attention kept at q6_k');

/** quantizeModel()'s option names → this command's arguments, for messages. */
export const flagNames = { 'quantization type': 'TYPE', src: 'INPUT', dst: 'OUTPUT', imatrix: '--imatrix', tensorTypes: '--tensor-type', outputType: '--output-tensor-type', tokenEmbeddingType: '--token-embedding-type' };

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const threads = intFlag(a, 'threads');
  const bar = progress(`quantize ${String(a.type)}`, !a.json);
  const output = resolve(String(a.output));
  const existed = existsSync(output);
  // llama.cpp's quantizer cannot be stopped midway: an interrupt ends the process and removes the partial output
  signal.addEventListener('abort', () => {
    if (!existed) rmSync(output, { force: true });
    process.stderr.write('moe-eval quantize: interrupted; the partial output was removed\n');
    process.exit(130);
  });
  try {
    signal.throwIfAborted();
    const out = await quantizeModel(String(a.input), String(a.output), {
      type: String(a.type),
      allowRequantize: Boolean(a['allow-requantize']),
      ...(a.imatrix === undefined ? {} : { imatrix: stringFlag(a, 'imatrix')! }),
      ...(a['tensor-type'] === undefined ? {} : { tensorTypes: (a['tensor-type'] as string[]).map(String) }),
      ...(a['output-tensor-type'] === undefined ? {} : { outputType: stringFlag(a, 'output-tensor-type')! }),
      ...(a['token-embedding-type'] === undefined ? {} : { tokenEmbeddingType: stringFlag(a, 'token-embedding-type')! }),
      pure: Boolean(a.pure),
      leaveOutputTensor: Boolean(a['leave-output-tensor']),
      ...(a['include-weights'] === undefined ? {} : { includeWeights: (a['include-weights'] as string[]).map(String) }),
      ...(a['exclude-weights'] === undefined ? {} : { excludeWeights: (a['exclude-weights'] as string[]).map(String) }),
      ...(threads === undefined ? {} : { threads }),
      onProgress: (f) => bar.chunks(Math.round(f * 100), 100, 'tensors %'),
    });
    bar.stop();
    const [before, after] = await Promise.all([readGgufInfo(String(a.input)), readGgufInfo(out)]);
    const result = { output: out, type: String(a.type).toUpperCase(), input: { sizeBytes: before.tensorBytes, bitsPerWeight: before.bitsPerWeight }, sizeBytes: after.tensorBytes, bitsPerWeight: after.bitsPerWeight, parameters: after.parameters };
    if (a.json) printJson(result);
    else process.stdout.write(`wrote ${out}: ${result.type}, ${formatMiB(after.tensorBytes)} at ${formatBitsPerWeight(after.bitsPerWeight)} bits per weight (was ${formatMiB(before.tensorBytes)} at ${formatBitsPerWeight(before.bitsPerWeight)})\n`);
  } finally {
    bar.stop();
  }
}
