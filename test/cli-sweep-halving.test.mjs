// moe-eval sweep --strategy halving through a real child process (a pipe run and a terminal run).
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { dir, root } from './helpers/fixtures.mjs';
import { finalScreen, plain, runInTerminal } from './helpers/pty.mjs';
import { cli, runCli as run } from './helpers/cli.mjs';

const demo = join(root, 'models', 'demo', 'moe-demo.gguf');
const heldout = join(root, 'models', 'demo', 'heldout.txt');
// the demo model: expert-output scales far from 1 are clearly worse than the model's own routing
const args = (out) => ['sweep', '-m', demo, '-f', heldout, '-c', '64', '-b', '256', '-t', '2', '--chunks', '32', '-o', out, '--expert-scale', '0.1', '0.3', '1', '3', '10', '--strategy', 'halving', '--initial-chunks', '4'];

describe('moe-eval sweep --strategy halving', () => {
  test('the table says how many chunks each point got and why it was dropped; --json has the search', async () => {
    const out = join(dir, 'cli-halving.jsonl');
    rmSync(out, { force: true });
    const r = await run(args(out));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /│ routing\s+│ chunks │ search\s+│/);
    assert.match(r.stdout, /│ default\s+│ \d+\s+│ best\s+│/);
    assert.match(r.stdout, /dropped: t \d+\.\d+ > \d+\.\d+ vs default/);
    assert.match(r.stdout, /tokens decoded: \d+, the full grid 10240 \(\d+\.\d+× fewer\)/);
    assert.equal(r.stderr, '', 'no progress on a pipe');
    // rerun: resumed from the file, the same result as JSON
    const j = await run([...args(out), '--json']);
    assert.equal(j.code, 0, j.stderr);
    const res = JSON.parse(j.stdout);
    assert.equal(res.strategy, 'halving');
    assert.equal(res.resumed, 5);
    assert.equal(res.halving.best, 'default');
    assert.equal(res.rows.filter((x) => x.best).length, 1);
    assert.ok(res.rows.some((x) => x.dropped && x.dropped.against === 'default' && x.chunks < 32));
    assert.ok(res.tokensEvaluated < res.halving.tokensFullGrid);
    assert.equal(JSON.parse(readFileSync(out, 'utf8').split('\n')[0]).basis.strategy, 'halving');
  });

  test('a misspelled --strategy gets a suggestion; flags that make no sense with it are refused', async () => {
    const base = ['sweep', '-m', demo, '-f', heldout, '-o', join(dir, 'never.jsonl'), '--experts', '1', '2'];
    const bad = await run([...base, '--strategy', 'halvng']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Expected 'grid' or 'halving' for --strategy but received "halvng"\. Did you mean 'halving'\?/);
    for (const [extra, message] of [
      [['--initial-chunks', '4'], /--initial-chunks needs --strategy halving/],
      [['--alpha', '0.1'], /--alpha needs --strategy halving/],
      [['--strategy', 'halving', '--winogrande-file', 'w.csv'], /--winogrande-file needs --strategy grid/],
      [['--strategy', 'halving', '--alpha', '0.9'], /Expected a number in \(0, 0\.5\) for --alpha but received number 0\.9/],
      [['--strategy', 'halving', '--initial-chunks', '1'], /--initial-chunks/],
    ]) {
      const r = await run([...base, ...extra]);
      assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });

  test('on a terminal the progress shows the round and the piece under way', async () => {
    const out = join(dir, 'tty-halving.jsonl');
    rmSync(out, { force: true });
    const r = await runInTerminal([process.execPath, cli, ...args(out)]);
    assert.equal(r.code, 0, plain(r.screen));
    assert.match(plain(r.screen), /sweep \[[^\]]*\] \d+\/5 points .*round 1\/4, chunks 0–4: /);
    assert.match(plain(r.screen), /round 2\/4, chunks 4–8: /);
    assert.match(finalScreen(r.screen), /best/);
  });
});
