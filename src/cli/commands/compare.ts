/** moe-eval compare: models and quantization levels × routings, against the first model; a table, plots and an HTML report. */
import { resolve } from 'node:path';
import type { Argv } from 'yargs';

import { compare } from '../../compare.js';
import { formatBitsPerWeight, formatDeltaPercent, formatKld, formatMiB, formatPercent, formatPerplexity, formatStderr, formatTokensPerSecond } from '../../format.js';
import { writeReport } from '../../report/index.js';
import { contextFlags, intFlag, jsonFlag, kldTopKFlag, modelFlags, routingFlags, stringFlag, textFlags } from '../flags.js';
import { contextFromArgs, loadOptionsFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { notice, progress } from '../progress.js';
import { routingGridFromArgs } from '../routing-args.js';

export const command = 'compare';
export const describe = 'compare models and quantization levels under routings against the first model (PPL, KLD, report)';
export const builder = (y: Argv) =>
  kldTopKFlag(jsonFlag(routingFlags(textFlags(contextFlags(modelFlags(y))))))
    .option('model', { alias: 'm', type: 'string', array: true, demandOption: true, describe: 'GGUF files (repeat -m); the first, with its own routing, is the reference' })
    .option('quantize', { alias: 'q', type: 'string', describe: "also quantize the first model: types q8_0,q4_k_m,q2_k, or recipes separated by ';' ('q4_k_m; iq2_xxs+imatrix, attn=q6_k')" })
    .option('calibration-file', { type: 'string', describe: "the text '+imatrix' recipes collect their importance matrix on" })
    .option('cache-dir', { type: 'string', default: '.moe-eval-cache', describe: 'folder for the quantized files and the reference base (created; reused by later runs)' })
    .option('report', { type: 'string', default: 'reports/compare', describe: 'folder for report.html, results.json, results.csv and the plots' })
    .example('$0 compare -m model-f16.gguf -q q8_0,q4_k_m,q2_k --experts 2 3 --expert-scale none uniform -f text.txt', 'every quantization × 3 routings (experts=2 with uniform scale is the default)');

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const input = await textFromArgs(a);
  const routings = await routingGridFromArgs(a);
  const models = (a.model as string[]).map(String);
  const q = stringFlag(a, 'quantize') ?? '';
  // recipes carry commas of their own ("iq2_xxs+imatrix, attn=q6_k"): with a ';' it separates recipes
  const quantize = q.split(q.includes(';') ? ';' : ',').map((s) => s.trim()).filter(Boolean);
  const calibration = stringFlag(a, 'calibration-file');
  const loadOptions = loadOptionsFromArgs(a);
  const kldTopK = intFlag(a, 'kld-top-k');
  const bar = progress('compare', !a.json);
  try {
    const r = await compare({
      ...input,
      models,
      loadOptions,
      quantize,
      ...(calibration ? { calibration: { file: calibration } } : {}),
      routings,
      cacheDir: stringFlag(a, 'cache-dir')!,
      ...(kldTopK === undefined ? {} : { kldTopK }),
      ...contextFromArgs(a),
      signal,
      onEvent: (e) => {
        if (e.kind === 'cache') notice(`quantized files and the reference base go to ${e.dir}`);
        else if (e.kind === 'quantize') bar.chunks(Math.round(100 * e.fraction), 100, `quantizing ${e.type}`);
        else if (e.kind === 'evaluate') {
          bar.points(e.done, e.total, `${e.model} ${e.routing}`);
          bar.chunks(e.chunksDone, e.chunksTotal);
        } else bar.points(e.done, e.total, `${e.row.model} ${e.row.routing}: PPL ${formatPerplexity(e.row.perplexity)}`);
      },
    });
    bar.stop();
    const written = await writeReport(resolve(stringFlag(a, 'report')!), r);
    if (a.json) {
      printJson({ ...r, report: written });
      return;
    }
    process.stdout.write(
      table(
        ['model', 'type', 'size', 'bits/weight', 'routing', 'PPL', '±', 'ΔPPL', 'mean KLD', 'same top', `tokens/s (-t ${r.settings.threads})`],
        r.rows.map((x) => [x.model, x.fileType, formatMiB(x.sizeBytes), formatBitsPerWeight(x.bitsPerWeight), x.routing, formatPerplexity(x.perplexity), formatStderr(x.stderr), formatDeltaPercent(x.deltaPercent), formatKld(x.kldMean), formatPercent(x.sameTopPercent), formatTokensPerSecond(x.tokensPerSecond)]),
      ) + '\n',
    );
    process.stdout.write(`report: ${written.html}\n`);
  } finally {
    bar.stop();
  }
}
