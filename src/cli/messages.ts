/**
 * Errors in the user's words. The API names its options (`contextSize`, `routing.minWeightRatio`);
 * on the command line the same message names the flag the user typed (`-c`, `--ser (t)`). The table
 * maps every API option a command passes on to its flag; a command may add its own (calibrate's
 * `experts`).
 */
export { closest } from '../validate.js';

const API_TO_FLAG: [api: string, flag: string][] = [
  ['routing.minWeightRatio', '--ser (t)'],
  ['routing.minExperts', '--ser (Kmin)'],
  ['routing.expertScale', '--expert-scale'],
  ['routing.gateScale', '--gate-scale'],
  ['routing.maskExperts', '--mask-experts'],
  ['routing.experts', '--experts'],
  ['routing.topP', '--top-p'],
  ['routing.profile', '--profile'],
  ['contextSize', '-c'],
  ['ubatchSize', '-ub'],
  ['batchSize', '-b'],
  ['threads', '-t'],
  ['flashAttention', '-fa'],
  ['cacheTypeK', '-ctk'],
  ['cacheTypeV', '-ctv'],
  ['chunks', '--chunks'],
  ['gpuLayers', '-ngl'],
  ['kvOverrides', '--override-kv'],
  ['rpcServers', '--rpc'],
  ['saveReference', '--kl-divergence-base'],
  ['reference', '--kl-divergence-base'],
  ['kldTopK', '--kld-top-k'],
];

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `message` with API option names replaced by the flags of this command. */
export function inUserWords(message: string, extra: Record<string, string> = {}): string {
  let out = message;
  const pairs = [...Object.entries(extra), ...API_TO_FLAG].sort((a, b) => b[0].length - a[0].length);
  for (const [api, flag] of pairs) {
    if (/^[a-z]+$/.test(api)) {
      // a name that is also an English word ("chunks", "threads"): only where a message names an option
      out = out.replace(new RegExp(`(?<=\\bfor )${escape(api)}\\b`, 'g'), flag);
      continue;
    }
    // a whole option name, possibly prefixed by where it was checked ("evaluate.contextSize")
    out = out.replace(new RegExp(`(?<![\\w-])(?:[a-zA-Z]+\\(\\)\\.|[a-zA-Z]+\\.)?${escape(api)}(?![\\w])`, 'g'), flag);
  }
  return out;
}
