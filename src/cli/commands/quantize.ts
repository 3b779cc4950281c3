/** moe-eval quantize: llama.cpp's quantizer (llama-quantize) through the addon. */
import type { Argv } from 'yargs';

import { QUANT_TYPES, quantizeModel } from '../../quantize.js';
import { printJson } from '../output.js';
import { progressBar } from '../progress.js';

export const command = 'quantize <input> <output> <type>';
export const describe = 'quantize a GGUF (llama-quantize types: ' + Object.keys(QUANT_TYPES).join(', ') + ')';
export const builder = (y: Argv) =>
  y
    .positional('input', { type: 'string', demandOption: true })
    .positional('output', { type: 'string', demandOption: true })
    .positional('type', { type: 'string', demandOption: true })
    .option('threads', { alias: 't', type: 'number' })
    .option('allow-requantize', { type: 'boolean', default: false })
    .option('json', { type: 'boolean', default: false })
    .example('$0 quantize model-f16.gguf model-q4_k_m.gguf q4_k_m', '');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args): Promise<void> {
  const bar = progressBar(`quantize ${a.type}`);
  const out = await quantizeModel(a.input!, a.output!, {
    type: a.type!,
    allowRequantize: a['allow-requantize'],
    ...(a.threads ? { threads: a.threads } : {}),
    onProgress: (f) => bar.update(Math.round(f * 100), 100, 'tensors %'),
  });
  bar.stop();
  if (a.json) printJson({ output: out, type: a.type });
  else process.stdout.write(`wrote ${out}\n`);
}
