/**
 * Errors in the user's words. The API names its options (`contextSize`, `routing.minWeightRatio`);
 * on the command line the same message names the flag the user typed (`-c`, `--ser (t)`). The table
 * maps every API option a command passes on to its flag; a command may add its own (calibrate's
 * `experts`).
 */
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
  ['chunks', '--chunks'],
  ['gpuLayers', '-ngl'],
  ['kvOverrides', '--override-kv'],
  ['rpcServers', '--rpc'],
  ['saveReference', '--kl-divergence-base'],
  ['reference', '--kl-divergence-base'],
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

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i]![j] = Math.min(dp[i - 1]![j]! + 1, dp[i]![j - 1]! + 1, dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length]![b.length]!;
}

/** The closest of `known` to `word`, when close enough to be a likely misspelling. */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD || (d === bestD && best !== undefined && k.startsWith(word) && !best.startsWith(word))) {
      bestD = d;
      best = k;
    }
  }
  if (best === undefined) return undefined;
  if (bestD <= Math.max(2, Math.floor(best.length / 3))) return best;
  // or the one sharing the longest beginning with it ("experts" → "expert-count")
  const common = (k: string) => {
    let i = 0;
    while (i < k.length && i < word.length && k[i]!.toLowerCase() === word[i]!.toLowerCase()) i++;
    return i;
  };
  const byPrefix = [...known].sort((x, y) => common(y) - common(x))[0]!;
  return common(byPrefix) >= Math.min(5, word.length) ? byPrefix : undefined;
}
