#!/usr/bin/env node
/**
 * The moe-eval command line. Exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted.
 * Results go to stdout (--json: the result alone); logs and progress go to stderr.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

import { MoeEvalError } from '../errors.js';
import * as calibrate from './commands/calibrate.js';
import * as compare from './commands/compare.js';
import * as demo from './commands/demo.js';
import * as exportCmd from './commands/export.js';
import * as info from './commands/info.js';
import * as perplexity from './commands/perplexity.js';
import * as quantize from './commands/quantize.js';
import * as rpcServer from './commands/rpc-server.js';
import * as scale from './commands/scale.js';
import * as sweep from './commands/sweep.js';

const controller = new AbortController();
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\ninterrupted: stopping after the current chunk (Ctrl-C again to quit now)\n');
  controller.abort(new MoeEvalError('ABORT_ERR', 'interrupted'));
});

type Module = { command: string; describe: string; builder: (y: never) => unknown; handler: (a: never, s: AbortSignal) => Promise<void> };
const commands: Module[] = [perplexity, sweep, compare, calibrate, info, scale, quantize, exportCmd, rpcServer, demo] as unknown as Module[];

function exitCodeFor(e: unknown): number {
  if (interrupted) return 130;
  if (e instanceof TypeError || e instanceof RangeError) return 2;
  return 1;
}

// yargs reads a lone "-" as an unknown positional; llama.cpp's "-f -" (stdin) is kept as "--file=-".
const argv = hideBin(process.argv).flatMap((arg, i, all) =>
  arg === '-' && (all[i - 1] === '-f' || all[i - 1] === '--file') ? [] : (arg === '-f' || arg === '--file') && all[i + 1] === '-' ? ['--file=-'] : [arg],
);

let cli = yargs(argv)
  .scriptName('moe-eval')
  .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': false })
  .usage('$0 <command> [options]\n\nChange how a Mixture-of-Experts model routes tokens, and measure it with llama.cpp\'s numbers.')
  .demandCommand(1, 'Pick a command')
  .strict()
  .help()
  .alias('h', 'help')
  .version()
  .fail((msg, err) => {
    if (err) throw err;
    process.stderr.write(`${msg}\nRun with --help for usage.\n`);
    process.exit(2);
  });

for (const c of commands) {
  cli = cli.command(c.command, c.describe, c.builder as never, async (a: never) => {
    await c.handler(a, controller.signal);
  });
}

try {
  await cli.parseAsync();
} catch (e) {
  const code = exitCodeFor(e);
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`moe-eval: ${code === 130 ? 'interrupted' : msg}\n`);
  process.exitCode = code;
}
