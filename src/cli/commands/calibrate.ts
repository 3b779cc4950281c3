/** moe-eval calibrate: measure the routing statistics and per-layer α from text; write a profile. */
import type { Argv } from 'yargs';

import { calibrate } from '../../calibrate.js';
import { formatPerplexity } from '../../format.js';
import { contextFlags, intFlag, jsonFlag, modelFlags, stringFlag, textFlags } from '../flags.js';
import { contextFromArgs, loadModelFromArgs, textFromArgs } from '../load.js';
import { printJson, table } from '../output.js';
import { notice, progress } from '../progress.js';

export const command = 'calibrate';
export const describe = "measure the router's prior, expert usage and α(m) per layer on text; write a routing profile";
export const builder = (y: Argv) =>
  jsonFlag(textFlags(contextFlags(modelFlags(y))))
    .option('experts', { type: 'string', describe: 'experts per token computed: the largest m the profile covers (default: N, at most 4·n)' })
    .option('min-expert-tokens', { type: 'string', describe: 'warn about experts routed fewer calibration tokens than this (default 16)' })
    .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'profile JSON to write (its folder is created)' })
    .example('$0 calibrate -m model.gguf -f calib.txt -o profile.json', 'then: perplexity --expert-scale calibrated --profile profile.json');

/** calibrate's own option names → its flags, for messages. */
export const flagNames = { experts: '--experts', minExpertTokens: '--min-expert-tokens' };

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const input = await textFromArgs(a);
  const experts = intFlag(a, 'experts');
  const minExpertTokens = intFlag(a, 'min-expert-tokens');
  const model = await loadModelFromArgs(a, signal);
  const bar = progress('calibrate', !a.json);
  try {
    const p = await calibrate(model, {
      ...input,
      ...contextFromArgs(a),
      ...(experts === undefined ? {} : { experts }),
      ...(minExpertTokens === undefined ? {} : { minExpertTokens }),
      signal,
      onProgress: (e) => bar.chunks(e.chunksDone, e.chunksTotal),
    });
    bar.stop();
    const out = stringFlag(a, 'out')!;
    await p.save(out);
    const below = p.data.coverage?.below ?? [];
    if (below.length > 0) notice(`${below.length} of ${p.data.layers.length * p.expertCount} experts got fewer than ${p.data.coverage!.minTokens} calibration tokens (their statistics are noise): ${below.slice(0, 8).map((x) => `layer ${x.layer} expert ${x.expert} (${x.tokens})`).join(', ')}${below.length > 8 ? ', …' : ''}`);
    if (a.json) {
      printJson(p.data);
      return;
    }
    const d = p.data;
    const f3 = (x: number) => x.toFixed(3);
    process.stdout.write(`${d.model.file}: N=${d.model.expertCount}, n=${d.model.expertsUsed}, ${d.model.renormalized ? 'renormalized' : 'un-normalized'} weights; ${d.text.scoredTokens} tokens; PPL ${formatPerplexity(d.perplexity)}\n`);
    process.stdout.write(
      table(
        ['layer', 'prior p1..p4', 'min/max expert use', 'entropy', 'ρ', ...d.global.alpha.map((_, i) => `α(${i + 1})`)],
        [
          ...d.layers.map((l) => [
            l.layer,
            l.priorByRank.slice(0, 4).map(f3).join(' '),
            `${((100 * Math.min(...l.selectionFrequency)) / d.model.expertsUsed).toFixed(2)} % / ${((100 * Math.max(...l.selectionFrequency)) / d.model.expertsUsed).toFixed(2)} %`,
            l.entropy === null ? '-' : f3(l.entropy),
            f3(l.correlation),
            ...l.alpha.map(f3),
          ]),
          ['all', d.global.priorByRank.slice(0, 4).map(f3).join(' '), '', '', f3(d.global.correlation), ...d.global.alpha.map(f3)],
        ],
      ) + '\n',
    );
    process.stdout.write(`profile: ${out}\n`);
  } finally {
    bar.stop();
    await model.dispose();
  }
}
