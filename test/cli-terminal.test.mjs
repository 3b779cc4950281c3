// The CLI as a person at a terminal meets it: in a real pseudo-terminal (progress bars drawn), Ctrl-C
// ends every command with 130, an error during a run is printed after the bars are gone and the
// command ends with 1, and rpc-server stops on Ctrl-C and on SIGINT.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { dir, fixture, root } from './helpers/fixtures.mjs';
import { finalScreen, plain, runInTerminal } from './helpers/pty.mjs';

const cli = join(root, 'dist', 'cli', 'main.js');
const demo = join(root, 'models', 'demo', 'moe-demo.gguf');
const heldout = join(root, 'models', 'demo', 'heldout.txt');
// the whole held-out text at -c 128 is hundreds of chunks: far longer than the moment a Ctrl-C takes
const long = ['-f', heldout, '-c', '128', '-b', '128', '-t', '1'];

/** Types Ctrl-C once the progress bar shows that chunks are being evaluated. */
function ctrlCOnceRunning(screen, api) {
  if (!api.sent && /\d+\/\d+ chunks/.test(screen)) {
    api.sent = true;
    api.ctrlC();
  }
}

/** The last "N/M chunks" a progress bar drew. */
function lastChunks(screen) {
  const all = [...plain(screen).matchAll(/(\d+)\/(\d+) chunks/g)];
  const last = all.at(-1);
  return last ? { done: Number(last[1]), total: Number(last[2]) } : undefined;
}

describe('in a terminal', () => {
  test('Ctrl-C during perplexity ends it within the current chunk, with 130', async () => {
    const r = await runInTerminal([process.execPath, cli, 'perplexity', '-m', demo, ...long], { onOutput: ctrlCOnceRunning });
    assert.equal(r.code, 130, plain(r.screen));
    assert.match(plain(r.screen), /interrupted: stopping after the current chunk/);
    assert.match(finalScreen(r.screen).trimEnd().split('\n').at(-1), /^moe-eval: interrupted$/);
    const c = lastChunks(r.screen);
    assert.ok(c && c.done < c.total, `stopped early (${c?.done}/${c?.total})`);
  });

  test('Ctrl-C during a sweep ends it with 130 and leaves only whole lines in its results file', async () => {
    const out = join(dir, 'tty-sweep.jsonl');
    const r = await runInTerminal([process.execPath, cli, 'sweep', '-m', demo, ...long, '-o', out, '--experts', '1', '2', '3', '--kld'], { onOutput: ctrlCOnceRunning });
    assert.equal(r.code, 130, plain(r.screen));
    // the points line is drawn above the chunks line
    assert.match(plain(r.screen), /sweep \[[^\]]*\] 0\/3 points/);
    const text = readFileSync(out, 'utf8');
    assert.ok(text.endsWith('\n'));
    assert.equal(JSON.parse(text.split('\n')[0]).format, 'moe-eval-results');
  });

  test('an error during a run is printed after the bars are gone, and the command ends with 1', async () => {
    // a second model whose header reads but whose tensor data is cut short: it fails to load after
    // the first model has been evaluated, in the middle of the comparison
    const good = await fixture('llama');
    const cut = join(dir, 'cut.gguf');
    writeFileSync(cut, readFileSync(good).subarray(0, Math.floor(statSync(good).size * 0.9)));
    const text = join(dir, 'tty.txt');
    writeFileSync(text, readFileSync(join(root, 'vendor', 'llama.cpp', 'README.md')));
    const r = await runInTerminal([process.execPath, cli, 'compare', '-m', good, '-m', cut, '-f', text, '-c', '64', '-t', '1', '--cache-dir', join(dir, 'tty-cache'), '--report', join(dir, 'tty-report')]);
    assert.equal(r.code, 1, plain(r.screen));
    assert.match(plain(r.screen), /\d+\/\d+ chunks/, 'progress was drawn');
    // what the terminal shows at the end: the bars cleared, the message on a line of its own, last
    const screen = finalScreen(r.screen).trimEnd();
    assert.match(screen.split('\n').at(-1), /^moe-eval: llama\.cpp could not load .*cut\.gguf/);
    assert.doesNotMatch(screen, /chunks \|/, 'no bar left on the screen');
  });

  test('rpc-server stops on Ctrl-C', async () => {
    const port = String(50100 + (process.pid % 500));
    const r = await runInTerminal([process.execPath, cli, 'rpc-server', '-p', port, '-t', '1'], {
      onOutput: (screen, api) => {
        if (!api.sent && /Ctrl-C to stop/.test(screen)) {
          api.sent = true;
          api.ctrlC();
        }
      },
    });
    assert.equal(r.code, 130, plain(r.screen));
    assert.match(plain(r.screen), /rpc-server: stopped/);
  });
});

describe('signals without a terminal', () => {
  test('rpc-server stops on SIGINT (kill -INT)', async () => {
    const port = String(50600 + (process.pid % 500));
    const child = spawn(process.execPath, [cli, 'rpc-server', '-p', port, '-t', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const code = await new Promise((resolve) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/Ctrl-C to stop/.test(stderr)) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    assert.equal(code, 130, stderr);
  });
});
