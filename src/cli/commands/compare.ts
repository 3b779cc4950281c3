/** moe-eval compare: quantization levels × routings, a table, plots and an HTML report. */
import { resolve } from 'node:path';
import type { Argv } from 'yargs';

import { compare } from '../../compare.js';
import { writeReport } from '../../report/index.js';
import type { Routing } from '../../routing.js';
import { evalFlags, readTextArg } from '../args.js';
import { fmt, printJson, table } from '../output.js';
import { progressBar } from '../progress.js';

export const command = 'compare';
export const describe = 'compare models and quantization levels under routings against the first model (PPL, KLD, report)';
export const builder = (y: Argv) =>
  evalFlags(y)
    .option('model', { alias: 'm', type: 'string', array: true, demandOption: true, describe: 'GGUF files; the first is the reference' })
    .option('quantize', { alias: 'q', type: 'string', describe: 'also quantize the first model: types separated by commas (q8_0,q4_k_m,q2_k)' })
    .option('routing', { alias: 'r', type: 'string', array: true, describe: 'routings as JSON, e.g. \'{"experts":3,"expertScale":"uniform"}\' (repeatable; default: each model\'s own)' })
    .option('cache-dir', { type: 'string', default: '.moe-eval-cache' })
    .option('report', { type: 'string', default: 'reports/compare', describe: 'folder for report.html, results.json/csv and plots' })
    .option('json', { type: 'boolean', default: false })
    .example('$0 compare -m model-f16.gguf -q q8_0,q4_k_m,q2_k -r \'{}\' -r \'{"experts":3,"expertScale":"uniform"}\' -f text.txt', '');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const input = await readTextArg(a.file);
  const routings = (a.routing ?? ['{}']).map((s) => {
    try {
      return JSON.parse(s) as Routing;
    } catch {
      throw new TypeError(`Expected a routing as JSON for --routing but received ${s}`);
    }
  });
  const bar = a.json ? progressBar('') : progressBar('compare');
  const r = await compare({
    ...input,
    models: a.model,
    quantize: a.quantize ? a.quantize.split(',').map((s) => s.trim()).filter(Boolean) : [],
    routings,
    cacheDir: a['cache-dir'],
    contextSize: a['ctx-size'],
    batchSize: a['batch-size'],
    ...(a.threads ? { threads: a.threads } : {}),
    ...(a.chunks ? { chunks: a.chunks } : {}),
    signal,
    onEvent: (e) => {
      if (e.kind === 'row') bar.update(e.done, e.total, `${e.row.model} ${e.row.routing}: PPL ${fmt(e.row.perplexity)}`);
    },
  });
  bar.stop();
  const written = await writeReport(resolve(a.report), r);
  if (a.json) {
    printJson({ ...r, report: written });
    return;
  }
  process.stdout.write(
    table(
      ['model', 'type', 'MiB', 'bpw', 'routing', 'PPL', '±', 'ΔPPL %', 'mean KLD', 'same top %', 'tokens/s'],
      r.rows.map((x) => [x.model, x.fileType, fmt(x.sizeBytes / 2 ** 20, 1), fmt(x.bitsPerWeight, 2), x.routing, fmt(x.perplexity), fmt(x.stderr), fmt(x.deltaPercent ?? NaN, 2), fmt(x.kldMean ?? NaN, 6), fmt(x.sameTopPercent ?? NaN, 2), fmt(x.tokensPerSecond, 0)]),
    ) + '\n',
  );
  process.stdout.write(`report: ${written.html}\n`);
}
