/** moe-eval quantize: llama.cpp's quantizer (llama-quantize) through the addon. */
import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Argv } from 'yargs';

import { formatBitsPerWeight, formatMiB } from '../../format.js';
import { readGgufInfo } from '../../gguf-info.js';
import { QUANT_TYPES, quantizeModel } from '../../quantize.js';
import { intFlag, jsonFlag } from '../flags.js';
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
    .example('$0 quantize model-f16.gguf model-q4_k_m.gguf q4_k_m', '');

/** quantizeModel()'s option names → this command's arguments, for messages. */
export const flagNames = { 'quantization type': 'TYPE', src: 'INPUT', dst: 'OUTPUT' };

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
