/**
 * Argument validation shared by every API surface. Messages follow one pattern:
 * "Expected <what> for <name> but received <value>".
 */

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'function') return 'a function';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
}

export function expected(what: string, name: string, value: unknown): string {
  return `Expected ${what} for ${name} but received ${describe(value)}`;
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

/**
 * The closest of `known` to `word`, when close enough to be a likely misspelling (few edits, or a long
 * shared beginning: "experts" → "expert-count"). The one rule for API options and CLI flags and commands.
 */
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
  const common = (k: string) => {
    let i = 0;
    while (i < k.length && i < word.length && k[i]!.toLowerCase() === word[i]!.toLowerCase()) i++;
    return i;
  };
  const byPrefix = [...known].sort((x, y) => common(y) - common(x))[0]!;
  return common(byPrefix) >= Math.min(5, word.length) ? byPrefix : undefined;
}

/** Rejects unknown option names, suggesting the closest known one. */
export function checkOptionNames(options: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key) || (options as Record<string, unknown>)[key] === undefined) continue;
    const best = closest(key, known);
    const hint = best ? ` Did you mean '${best}'?` : '';
    throw new TypeError(`Unknown option '${key}' for ${where}.${hint} Known options: ${known.join(', ')}`);
  }
}

export function optionsObject(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TypeError(expected('an options object', name, value));
  return value as Record<string, unknown>;
}

export function integer(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(expected(`an integer in [${min}, ${max}]`, name, value));
  if (value < min || value > max) throw new RangeError(expected(`an integer in [${min}, ${max}]`, name, value));
  return value;
}

export function optionalInteger(value: unknown, name: string, min: number, max: number): number | undefined {
  return value === undefined ? undefined : integer(value, name, min, max);
}

export function positiveNumber(value: unknown, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(expected('a finite number > 0', name, value));
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(expected('a finite number > 0', name, value));
  return value;
}

export function numberInRange(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(expected(`a number in [${min}, ${max}]`, name, value));
  if (value < min || value > max) throw new RangeError(expected(`a number in [${min}, ${max}]`, name, value));
  return value;
}

export function nonEmptyString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(expected('a non-empty string', name, value));
  return value;
}

export function optionalBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new TypeError(expected('a boolean', name, value));
  return value;
}

export function optionalSignal(value: unknown, name: string): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw new TypeError(expected('an AbortSignal', name, value));
  return value;
}

export function optionalFunction<T extends (...args: never[]) => unknown>(value: unknown, name: string): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new TypeError(expected('a function', name, value));
  return value as T;
}
