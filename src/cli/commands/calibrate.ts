/** moe-eval calibrate: measure the routing statistics and per-layer α from text; write a profile. */
import type { Argv } from 'yargs';

import { calibrate } from '../../calibrate.js';
import { loadModel } from '../../model.js';
import { evalFlags, modelFlags, readTextArg } from '../args.js';
import { fmt, printJson, table } from '../output.js';
import { progressBar } from '../progress.js';

export const command = 'calibrate';
export const describe = "measure the router's prior, expert usage and α(m) per layer on text; write a routing profile";
export const builder = (y: Argv) =>
  evalFlags(modelFlags(y))
    .option('experts', { type: 'number', describe: 'largest expert count to measure (default: N, at most 4·n)' })
    .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'profile JSON to write' })
    .example('$0 calibrate -m model.gguf -f calib.txt -o profile.json', 'then: perplexity --expert-scale calibrated --profile profile.json');

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  const input = await readTextArg(a.file);
  const model = await loadModel(a.model, { gpuLayers: a['n-gpu-layers'], kvOverrides: a['override-kv'] ?? [], ...(a.rpc ? { rpcServers: a.rpc.split(',') } : {}), signal });
  try {
    const bar = a.json ? progressBar('') : progressBar('calibrate');
    const p = await calibrate(model, {
      ...input,
      contextSize: a['ctx-size'],
      batchSize: a['batch-size'],
      ...(a.experts ? { experts: a.experts } : {}),
      ...(a.threads ? { threads: a.threads } : {}),
      ...(a.chunks ? { chunks: a.chunks } : {}),
      signal,
      onProgress: (e) => bar.update(e.chunksDone, e.chunksTotal),
    });
    bar.stop();
    await p.save(a.out);
    if (a.json) {
      printJson(p.data);
      return;
    }
    const d = p.data;
    process.stdout.write(`${d.model.file}: N=${d.model.expertCount}, n=${d.model.expertsUsed}, ${d.model.renormalized ? 'renormalized' : 'un-normalized'} weights; ${d.text.scoredTokens} tokens; PPL ${fmt(d.perplexity)}\n`);
    process.stdout.write(
      table(
        ['layer', 'prior p1..p4', 'min/max expert use', 'entropy', 'ρ', ...d.global.alpha.map((_, i) => `α(${i + 1})`)],
        [
          ...d.layers.map((l) => [
            l.layer,
            l.priorByRank.slice(0, 4).map((x) => fmt(x, 3)).join(' '),
            `${fmt(100 * Math.min(...l.selectionFrequency) / d.model.expertsUsed, 1)}% / ${fmt(100 * Math.max(...l.selectionFrequency) / d.model.expertsUsed, 1)}%`,
            l.entropy === null ? '-' : fmt(l.entropy, 3),
            fmt(l.correlation, 3),
            ...l.alpha.map((x) => fmt(x, 3)),
          ]),
          ['all', d.global.priorByRank.slice(0, 4).map((x) => fmt(x, 3)).join(' '), '', '', fmt(d.global.correlation, 3), ...d.global.alpha.map((x) => fmt(x, 3))],
        ],
      ) + '\n',
    );
    process.stdout.write(`profile: ${a.out}\n`);
  } finally {
    await model.dispose();
  }
}
