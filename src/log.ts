/** Routes llama.cpp's log to a function (silent by default). MOE_EVAL_LOG=debug|info|warn|error prints to stderr. */
import { native } from './native.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'none';
const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'none'];

export function setLogger(fn: ((level: LogLevel, text: string) => void) | null, level: LogLevel = 'warn'): void {
  if (fn !== null && typeof fn !== 'function') throw new TypeError('Expected a function or null for the logger');
  if (!LEVELS.includes(level)) throw new RangeError(`Expected one of ${LEVELS.join(', ')} for the log level but received ${String(level)}`);
  native().setLogger(fn as ((level: string, text: string) => void) | null, level);
}

/** Applies MOE_EVAL_LOG if set. Called once when the package is imported. */
export function applyLogEnv(): void {
  const env = process.env.MOE_EVAL_LOG as LogLevel | undefined;
  if (env && LEVELS.includes(env) && env !== 'none') setLogger((l, t) => process.stderr.write(`[llama.cpp ${l}] ${t}\n`), env);
}
