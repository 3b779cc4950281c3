/**
 * Routing flags → API routings. Each flag's text goes to the API as is (src/routing.ts parses the one
 * grammar); here only the grid is built: several values of a flag (space-separated or the flag
 * repeated) are several points, and the points of several flags are their product.
 */
import { RoutingProfile } from '../profile.js';
import type { Routing } from '../routing.js';
import { flagName, stringFlag } from './flags.js';

type Axis = (r: Routing, value: string) => void;

const AXES: [flag: string, apply: Axis][] = [
  ['experts', (r, v) => (r.experts = v)],
  ['expert-scale', (r, v) => (r.expertScale = v)],
  ['gate-scale', (r, v) => (r.gateScale = v)],
  [
    'ser',
    (r, v) => {
      if (v === 'none') return;
      const m = /^\s*([^,\s]+)\s*,\s*([^,\s]+)\s*$/.exec(v);
      if (!m) throw new TypeError(`Expected Kmin,t (e.g. 1,0.5) or none for --ser but received ${JSON.stringify(v)}`);
      const k = Number(m[1]);
      const t = Number(m[2]);
      if (!/^\d+$/.test(m[1]!) || !Number.isFinite(t)) throw new TypeError(`Expected Kmin,t with an integer Kmin and a number t (e.g. 1,0.5) for --ser but received ${JSON.stringify(v)}`);
      r.minExperts = k;
      r.minWeightRatio = t;
    },
  ],
  [
    'top-p',
    (r, v) => {
      if (v === 'none') return;
      if (!/^\s*(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(v)) throw new TypeError(`Expected a probability in (0, 1] or none for --top-p but received ${JSON.stringify(v)}`);
      r.topP = Number(v);
    },
  ],
  ['mask-experts', (r, v) => (r.maskExperts = v)],
];

/** The values given for a routing flag: repeated flags and space-separated values, in order. */
function values(a: Record<string, unknown>, flag: string): string[] | undefined {
  const v = a[flag];
  if (v === undefined) return undefined;
  const list = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).trim().split(/\s+/)).filter((x) => x !== '');
  if (list.length === 0) throw new TypeError(`Expected a value for ${flagName(flag)}`);
  return list;
}

async function profileOf(a: Record<string, unknown>, points: Routing[]): Promise<RoutingProfile | undefined> {
  const path = stringFlag(a, 'profile');
  if (path === undefined) return undefined;
  if (!points.some((p) => typeof p.expertScale === 'string' && p.expertScale.trim() === 'calibrated')) {
    throw new TypeError('--profile is only used with --expert-scale calibrated; add that value or remove --profile');
  }
  return RoutingProfile.load(path);
}

/** Every routing the flags describe (their product), in flag order. [{}] when no routing flag is given. */
export async function routingGridFromArgs(a: Record<string, unknown>): Promise<Routing[]> {
  let points: Routing[] = [{}];
  for (const [flag, apply] of AXES) {
    const vs = values(a, flag);
    if (!vs) continue;
    points = points.flatMap((p) =>
      vs.map((v) => {
        const r = { ...p };
        apply(r, v);
        return r;
      }),
    );
  }
  const profile = await profileOf(a, points);
  return profile ? points.map((p) => (typeof p.expertScale === 'string' && p.expertScale.trim() === 'calibrated' ? { ...p, profile } : p)) : points;
}

/** The one routing of a command that evaluates one (perplexity, export, info): several values are refused. */
export async function routingFromArgs(a: Record<string, unknown>, command: string): Promise<Routing> {
  for (const [flag] of AXES) {
    const vs = values(a, flag);
    if (vs && vs.length > 1) {
      throw new TypeError(`${command} evaluates one routing, but ${flagName(flag)} has ${vs.length} values (${vs.join(' ')}); use \`moe-eval sweep\` for a grid`);
    }
  }
  return (await routingGridFromArgs(a))[0]!;
}
