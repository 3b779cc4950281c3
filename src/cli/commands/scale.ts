/** moe-eval scale: the seed's table and the normalization-aware one, for N, n and a prior. */
import type { Argv } from 'yargs';

import { formatFactor } from '../../format.js';
import { RoutingProfile } from '../../profile.js';
import { type Prior, scaleFactor } from '../../scale.js';
import { intFlag, jsonFlag, numberFlag, stringFlag } from '../flags.js';
import { loadModelFromArgs } from '../load.js';
import { printJson, table } from '../output.js';

export const command = 'scale';
export const describe = 'expert-output scale factors when using m instead of n experts per token (one row per m)';
export const builder = (y: Argv) =>
  jsonFlag(y)
    .option('model', { alias: 'm', type: 'string', describe: 'take N, n and the renormalization from this model' })
    .option('expert-count', { alias: 'N', type: 'string', describe: 'experts per MoE layer, N (GGUF expert_count; default 8)' })
    .option('trained', { alias: 'n', type: 'string', describe: 'experts per token the model was trained with, n (default 2)' })
    .option('zipf', { alias: 's', type: 'string', describe: 'Zipf skew s of the prior (0 = uniform, 1 = Zipf; default 0)' })
    .option('correlation', { type: 'string', describe: 'assumed correlation between expert outputs, in [0, 1) (default 0)' })
    .option('profile', { type: 'string', describe: 'add the factors a `moe-eval calibrate` profile measured (pooled over layers)' })
    .example('$0 scale -N 8 -n 2 -s 1', "the seed's Zipf table next to the renormalized one")
    .example('$0 scale -m mixtral.gguf', "the model's N, n and weight rule");

/** scaleFactor()'s option names → this command's flags, for messages. */
export const flagNames = { expertCount: '-N (--expert-count)', trained: '-n (--trained)', correlation: '--correlation', experts: 'm' };

export async function handler(a: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  let N = intFlag(a, 'expert-count') ?? 8;
  let n = intFlag(a, 'trained') ?? 2;
  const zipf = numberFlag(a, 'zipf') ?? 0;
  const correlation = numberFlag(a, 'correlation') ?? 0;
  if (zipf < 0) throw new RangeError(`Expected a Zipf skew >= 0 for -s (--zipf) but received ${zipf}`);
  let modelRenorm: boolean | undefined;
  if (stringFlag(a, 'model') !== undefined) {
    const model = await loadModelFromArgs(a, signal);
    try {
      N = model.info.expertCount;
      n = model.info.expertsUsed;
      modelRenorm = model.info.renormalized;
    } finally {
      await model.dispose();
    }
    if (N === 0) throw new TypeError(`${stringFlag(a, 'model')} is not a Mixture-of-Experts model`);
  }
  const profilePath = stringFlag(a, 'profile');
  const profile = profilePath ? await RoutingProfile.load(profilePath) : undefined;
  if (profile && modelRenorm === undefined) {
    N = profile.expertCount;
    n = profile.data.model.expertsUsed;
    modelRenorm = profile.data.model.renormalized;
  }
  const prior: Prior = zipf === 0 ? 'uniform' : { zipf };
  const rows = [];
  for (let m = 1; m <= N; m++) {
    const seed = scaleFactor({ expertCount: N, trained: n, experts: m, prior, renormalized: false, correlation });
    const renorm = scaleFactor({ expertCount: N, trained: n, experts: m, prior, renormalized: true, correlation });
    const calibrated = profile && m <= profile.computedExperts ? profile.globalScale(m) : undefined;
    // the closed form with the router's measured prior instead of a uniform or Zipf one
    const measuredPrior = profile ? scaleFactor({ expertCount: N, trained: n, experts: m, prior: profile.data.global.priorByRank, renormalized: modelRenorm ?? true, correlation }) : undefined;
    rows.push({ m, seed, renormalized: renorm, model: modelRenorm === undefined ? undefined : modelRenorm ? renorm : seed, measuredPrior, calibrated });
  }
  if (a.json) {
    printJson({ expertCount: N, trained: n, prior, correlation, modelRenormalized: modelRenorm ?? null, rows });
    return;
  }
  const head = ['m', 'seed (un-normalized)', 'renormalized top-k', ...(modelRenorm === undefined ? [] : ['this model']), ...(profile ? ['measured prior', 'calibrated (all layers)'] : [])];
  process.stdout.write(`N=${N}, n=${n}, prior ${zipf === 0 ? 'uniform' : `Zipf s=${zipf}`}${correlation ? `, ρ=${correlation}` : ''}\n`);
  process.stdout.write(table(head, rows.map((r) => [r.m, formatFactor(r.seed), formatFactor(r.renormalized), ...(r.model === undefined ? [] : [formatFactor(r.model)]), ...(profile ? [formatFactor(r.measuredPrior), r.calibrated === undefined ? '-' : formatFactor(r.calibrated)] : [])])) + '\n');
}
