/**
 * The numbers llama-perplexity prints for a multiple-choice run, and the paired comparison with a
 * reference it lacks. The one place these formulas live.
 */

export interface AccuracyStats {
  /** Tasks answered correctly. */
  correct: number;
  tasks: number;
  /** 100 · correct / tasks. */
  accuracy: number;
  /**
   * 100 · sqrt(p(1 − p)/(n − 1)): the "±" llama-perplexity prints after the Winogrande and
   * multiple-choice scores (NaN for one task).
   */
  uncertainty: number;
  /** The 95 % Wilson score interval in percent, what llama-perplexity prints for HellaSwag. */
  interval: [number, number];
}

export function accuracyStats(correct: number, tasks: number): AccuracyStats {
  const p = correct / tasks;
  const za = 1.95996398454;
  const z = (za * za) / tasks;
  const cnf = (z * Math.sqrt(tasks * (4 * p * (1 - p) + z))) / (za + za);
  return {
    correct,
    tasks,
    accuracy: 100 * p,
    uncertainty: 100 * Math.sqrt((p * (1 - p)) / (tasks - 1)),
    interval: [(100 * (p + z * 0.5 - cnf)) / (1 + z), (100 * (p + z * 0.5 + cnf)) / (1 + z)],
  };
}

export interface Flips {
  /** Tasks the reference got right and this run got wrong. */
  rightToWrong: number;
  /** Tasks the reference got wrong and this run got right. */
  wrongToRight: number;
  /** Their positions in the task list (perTask indices). */
  rightToWrongTasks: number[];
  wrongToRightTasks: number[];
  /** Tasks where the chosen answer differs (a flip, or one wrong answer for another). */
  changedAnswer: number;
}

export function flips(run: readonly { correct: boolean; chosen: number }[], reference: readonly { correct: boolean; chosen: number }[]): Flips {
  const f: Flips = { rightToWrong: 0, wrongToRight: 0, rightToWrongTasks: [], wrongToRightTasks: [], changedAnswer: 0 };
  for (let i = 0; i < run.length; i++) {
    const a = reference[i]!;
    const b = run[i]!;
    if (a.chosen !== b.chosen) f.changedAnswer++;
    if (a.correct && !b.correct) f.rightToWrongTasks.push(i);
    if (!a.correct && b.correct) f.wrongToRightTasks.push(i);
  }
  f.rightToWrong = f.rightToWrongTasks.length;
  f.wrongToRight = f.wrongToRightTasks.length;
  return f;
}

/**
 * Exact two-sided McNemar test of "same accuracy" on paired results: under the null hypothesis each of
 * the b + c discordant tasks is right→wrong with probability 1/2, so p = min(1, 2 · P[Bin(b + c, ½) ≤ min(b, c)]).
 */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  // log C(n, i) − n log 2, summed in log space (n can be in the thousands)
  let logTerm = -n * Math.LN2; // i = 0
  let sum = Math.exp(logTerm);
  for (let i = 1; i <= k; i++) {
    logTerm += Math.log((n - i + 1) / i);
    sum += Math.exp(logTerm);
  }
  return Math.min(1, 2 * sum);
}
