#!/usr/bin/env node
/**
 * The moe-eval command line. Exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted.
 * Results go to stdout (--json: the result alone); progress, notices and errors go to stderr.
 *
 * Ctrl-C (SIGINT) aborts the running work at the next chunk boundary (inside a CPU decode, sooner);
 * the command then ends with 130. A second Ctrl-C ends the process at once.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

import { MoeEvalError } from '../errors.js';
import * as benchCmd from './commands/bench.js';
import * as calibrate from './commands/calibrate.js';
import * as compare from './commands/compare.js';
import * as demo from './commands/demo.js';
import * as exportCmd from './commands/export.js';
import * as imatrixCmd from './commands/imatrix.js';
import * as info from './commands/info.js';
import * as perplexity from './commands/perplexity.js';
import * as prune from './commands/prune.js';
import * as quantize from './commands/quantize.js';
import * as rpcServer from './commands/rpc-server.js';
import * as scale from './commands/scale.js';
import * as scanCmd from './commands/scan.js';
import * as sweep from './commands/sweep.js';
import { closest, inUserWords } from './messages.js';
import { stopAllProgress } from './progress.js';

const controller = new AbortController();
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  stopAllProgress();
  process.stderr.write('\ninterrupted: stopping after the current chunk (Ctrl-C again to quit now)\n');
  controller.abort(new MoeEvalError('ABORT_ERR', 'interrupted'));
});

type Module = {
  command: string;
  describe: string;
  builder: (y: never) => unknown;
  handler: (a: never, s: AbortSignal) => Promise<void>;
  /** API option names this command maps to flags of its own (for messages). */
  flagNames?: Record<string, string>;
};
const commands: Module[] = [perplexity, sweep, scanCmd, prune, compare, benchCmd, calibrate, imatrixCmd, info, scale, quantize, exportCmd, rpcServer, demo] as unknown as Module[];
let running: Module | undefined;

function exitCodeFor(e: unknown): number {
  if (interrupted || (e instanceof Error && (e.name === 'AbortError' || (e as { code?: string }).code === 'ABORT_ERR'))) return 130;
  if (e instanceof TypeError || e instanceof RangeError) return 2;
  return 1;
}

// yargs reads a lone "-" as an unknown positional; llama.cpp's "-f -" (stdin) is kept as "--file=-".
const argv = hideBin(process.argv).flatMap((arg, i, all) =>
  arg === '-' && (all[i - 1] === '-f' || all[i - 1] === '--file') ? [] : (arg === '-f' || arg === '--file') && all[i + 1] === '-' ? ['--file=-'] : [arg],
);

function usageError(msg: string): never {
  stopAllProgress();
  process.stderr.write(`moe-eval: ${msg}\nRun with --help for usage.\n`);
  process.exit(2);
}

let cli = yargs(argv)
  .scriptName('moe-eval')
  .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': false })
  .usage('$0 <command> [options]\n\nChange how a Mixture-of-Experts model routes tokens, and measure it with llama.cpp\'s numbers.')
  .demandCommand(1, 'Pick a command')
  .strict()
  .recommendCommands()
  .help()
  .alias('h', 'help')
  .version()
  .wrap(Math.min(120, process.stdout.columns || 100))
  .fail((msg, err, usage) => {
    if (err) throw err;
    // an unknown flag: suggest the closest one this command knows
    const unknown = /^Unknown arguments?: (.*)$/.exec(msg ?? '');
    if (unknown) {
      const known = Object.keys((usage as unknown as { getDescriptions(): Record<string, string> }).getDescriptions());
      const hints = unknown[1]!
        .split(', ')
        .map((arg) => {
          const name = arg.replace(/^-+/, '');
          const best = closest(name, known.filter((k) => k.length > 1));
          return `unknown option ${arg.length > 1 && !arg.startsWith('-') ? `--${arg}` : arg}${best ? ` (did you mean --${best}?)` : ''}`;
        });
      usageError(hints.join('; '));
    }
    usageError(msg ?? 'invalid arguments');
  });

for (const c of commands) {
  cli = cli.command(c.command, c.describe, c.builder as never, async (a: never) => {
    running = c;
    await c.handler(a, controller.signal);
  });
}

let code = 0;
try {
  await cli.parseAsync();
} catch (e) {
  stopAllProgress();
  code = exitCodeFor(e);
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`moe-eval: ${code === 130 ? 'interrupted' : inUserWords(msg, running?.flagNames)}\n`);
} finally {
  stopAllProgress();
}
process.exitCode = code;
// Nothing of ours is left running now. Should anything still hold the event loop (a native handle of a
// failed operation), end anyway instead of hanging; the timer itself does not keep the process alive.
setTimeout(() => process.exit(code), 2000).unref();
