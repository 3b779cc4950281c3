/** moe-eval scale: the seed's table and the normalization-aware one, for N, n and a prior. */
import type { Argv } from 'yargs';

import { loadModel } from '../../model.js';
import { RoutingProfile } from '../../profile.js';
import { type Prior, scaleFactor } from '../../scale.js';
import { fmt, printJson, table } from '../output.js';

export const command = 'scale';
export const describe = 'expert-output scale factors when using m instead of n experts';
export const builder = (y: Argv) =>
  y
    .option('model', { alias: 'm', type: 'string', describe: 'take N, n and the renormalization from this model' })
    .option('expert-count', { alias: 'N', type: 'number', default: 8, describe: 'experts per MoE layer, N (GGUF expert_count)' })
    .option('trained', { alias: 'n', type: 'number', default: 2, describe: 'experts per token as trained (n)' })
    .option('zipf', { alias: 's', type: 'number', default: 0, describe: 'Zipf skew s of the prior (0 = uniform, 1 = Zipf)' })
    .option('correlation', { type: 'number', default: 0, describe: 'assumed correlation between expert outputs' })
    .option('profile', { type: 'string', describe: 'add the factors a `moe-eval calibrate` profile measured (pooled over layers)' })
    .option('json', { type: 'boolean', default: false })
    .example('$0 scale -N 8 -n 2 -s 1', "the seed's Zipf table next to the renormalized one")
    .example('$0 scale -m mixtral.gguf', "the model's N, n and weight rule");

type Args = Awaited<ReturnType<ReturnType<typeof builder>['parseAsync']>>;

export async function handler(a: Args, signal: AbortSignal): Promise<void> {
  let N = a['expert-count'];
  let n = a.trained;
  let modelRenorm: boolean | undefined;
  if (a.model) {
    const model = await loadModel(a.model, { signal });
    N = model.info.expertCount;
    n = model.info.expertsUsed;
    modelRenorm = model.info.renormalized;
    await model.dispose();
    if (N === 0) throw new TypeError(`${a.model} is not a Mixture-of-Experts model`);
  }
  const profile = a.profile ? await RoutingProfile.load(a.profile) : undefined;
  if (profile && !a.model) {
    N = profile.expertCount;
    n = profile.data.model.expertsUsed;
    modelRenorm = profile.data.model.renormalized;
  }
  const prior: Prior = a.zipf === 0 ? 'uniform' : { zipf: a.zipf };
  const rows = [];
  for (let m = 1; m <= N; m++) {
    const seed = scaleFactor({ expertCount: N, trained: n, experts: m, prior, renormalized: false, correlation: a.correlation });
    const renorm = scaleFactor({ expertCount: N, trained: n, experts: m, prior, renormalized: true, correlation: a.correlation });
    const calibrated = profile && m <= profile.computedExperts ? profile.globalScale(m) : undefined;
    // the closed form with the router's measured prior instead of a uniform or Zipf one
    const measuredPrior = profile ? scaleFactor({ expertCount: N, trained: n, experts: m, prior: profile.data.global.priorByRank, renormalized: modelRenorm ?? true, correlation: a.correlation }) : undefined;
    rows.push({ m, seed, renormalized: renorm, model: modelRenorm === undefined ? undefined : modelRenorm ? renorm : seed, measuredPrior, calibrated });
  }
  if (a.json) {
    printJson({ experts: N, trained: n, prior, correlation: a.correlation, modelRenormalized: modelRenorm ?? null, rows });
    return;
  }
  const head = ['m', 'seed (un-normalized)', 'renormalized top-k', ...(modelRenorm === undefined ? [] : ['this model']), ...(profile ? ['measured prior', 'calibrated (all layers)'] : [])];
  process.stdout.write(`N=${N}, n=${n}, prior ${a.zipf === 0 ? 'uniform' : `Zipf s=${a.zipf}`}${a.correlation ? `, ρ=${a.correlation}` : ''}\n`);
  process.stdout.write(table(head, rows.map((r) => [r.m, fmt(r.seed), fmt(r.renormalized), ...(r.model === undefined ? [] : [fmt(r.model)]), ...(profile ? [fmt(r.measuredPrior!), r.calibrated === undefined ? '-' : fmt(r.calibrated)] : [])])) + '\n');
}
