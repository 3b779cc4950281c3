// moe-eval prune: a pipe run (table, --json, resume, report with plots and heatmap, errors) and a terminal run (progress).
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { dir, fixture, sampleText } from './helpers/fixtures.mjs';
import { finalScreen, plain, runInTerminal } from './helpers/pty.mjs';
import { cli, runCli as run } from './helpers/cli.mjs';

let model;
let textFile;
const sizes = ['-c', '64', '-b', '256', '-t', '2', '--chunks', '3'];
before(async () => {
  model = await fixture('llama');
  textFile = join(dir, 'cli-prune.txt');
  writeFileSync(textFile, sampleText());
});

describe('moe-eval prune', () => {
  test('a table of criteria × ratios, a resumable results file, the report with its plots and the usage heatmap', async () => {
    const out = join(dir, 'cli-prune', 'p.jsonl');
    const report = join(dir, 'cli-prune', 'report');
    const args = ['prune', '-m', model, '-f', textFile, ...sizes, '--calibration-file', textFile, '--calibration-chunks', '6', '--ratios', '0,0.25', '0.5', '--by', 'reap,frequency', '-o', out, '--kld', '--report', report];
    const r = await run(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /criterion\s*│\s*pruned\s*│\s*experts kept\s*│\s*PPL/);
    assert.match(r.stdout, /reap\s*│\s*25\.00 %\s*│\s*75\.00 %/);
    assert.match(r.stdout, /frequency\s*│\s*50\.00 %\s*│\s*50\.00 %/);
    assert.match(r.stdout, /mean KLD/);
    assert.match(r.stdout, /profile written to .*p\.jsonl\.profile\.json/);
    // the coverage warning: 6 chunks of 64 tokens leave some of the 16 (layer, expert) pairs under 16 tokens, or none
    const profile = JSON.parse(readFileSync(`${out}.profile.json`, 'utf8'));
    const under = profile.layers.flatMap((l) => l.expertTokens.filter((t) => t < 16)).length;
    if (under > 0) assert.match(r.stderr, new RegExp(`${under} of 16 experts got fewer than 16 calibration tokens`));
    for (const f of ['report.html', 'results.json', 'results.csv', 'prune-kld-vs-kept.svg', 'prune-perplexity-vs-kept.svg', 'expert-usage.svg']) assert.ok(existsSync(join(report, f)), f);
    const html = readFileSync(join(report, 'report.html'), 'utf8');
    assert.match(html, /Expert usage on the calibration text/);
    assert.match(html, /Mean KL divergence vs\. experts kept/);

    const again = await run([...args, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout);
    assert.equal(j.evaluated, 0);
    assert.equal(j.calibrated, false);
    assert.equal(j.rows.length, 6);
    assert.deepEqual(j.rows.map((x) => x.keptFraction), [1, 0.75, 0.5, 1, 0.75, 0.5]);
  });

  test('a saved profile from calibrate; usage errors exit 2 naming the flag', async () => {
    const profile = join(dir, 'cli-prune', 'profile.json');
    const c = await run(['calibrate', '-m', model, '-f', textFile, '-c', '64', '-t', '2', '--chunks', '2', '-o', profile, '--experts', '2']);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /experts got fewer than 16 calibration tokens/);
    const r = await run(['prune', '-m', model, '-f', textFile, ...sizes, '--profile', profile, '--ratios', '0.125', '--by', 'weight', 'random', '-o', join(dir, 'cli-prune', 'q.jsonl'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.rows.map((x) => x.by), ['weight', 'random']);
    assert.equal(j.profile, null);

    const bad = async (extra, re) => {
      const e = await run(['prune', '-m', model, '-f', textFile, ...sizes, '-o', join(dir, 'cli-prune', 'bad.jsonl'), ...extra]);
      assert.equal(e.code, 2, e.stderr);
      assert.match(e.stderr, re);
    };
    await bad(['--profile', profile, '--ratios', '1'], /Expected a fraction of experts removed in \[0, 1\) for --ratios but received "1"/);
    await bad(['--profile', profile, '--ratios', '0.875'], /removes 7 of 8 experts per layer, leaving fewer than the 2 experts per token/);
    await bad(['--profile', profile, '--by', 'reaper'], /for --by but received "reaper"/);
    await bad([], /Give --calibration-file .* or --profile/);
    await bad(['--profile', profile, '--ratio', '0.5'], /--ratios/);
    // a profile of another model: a runtime error, exit 1
    const other = await fixture('qwen3moe');
    const e = await run(['prune', '-m', other, '-f', textFile, ...sizes, '-o', join(dir, 'cli-prune', 'other.jsonl'), '--profile', profile]);
    assert.equal(e.code, 1, e.stderr);
    assert.match(e.stderr, /measured on another model file/);
  });

  test('--help describes every option', async () => {
    const r = await run(['prune', '--help']);
    assert.equal(r.code, 0);
    const options = r.stdout.split('Options:')[1].split(/\n\s*\n/)[0].split('\n').filter((l) => /^\s{0,6}(-\w|--)/.test(l));
    for (const f of ['--calibration-file', '--profile', '--ratios', '--by', '--scope', '--seed', '--kld', '--report', '--out']) assert.ok(options.some((l) => l.includes(f)), f);
    for (const line of options) assert.ok(line.replace(/^\s+(-[\w-]+,?\s*)+/, '').replace(/\[[^\]]*\]/g, '').trim().length > 3, line);
  });

  test('in a terminal: calibration and points progress', async () => {
    const out = join(dir, 'cli-prune', 'tty.jsonl');
    const r = await runInTerminal([process.execPath, cli, 'prune', '-m', model, '-f', textFile, ...sizes, '--calibration-file', textFile, '--ratios', '0', '0.5', '--by', 'random', '-o', out]);
    assert.equal(r.code, 0, plain(r.screen));
    assert.match(plain(r.screen), /\d+\/\d+ chunks .*calibrating/);
    assert.match(finalScreen(r.screen), /random\s*│\s*50\.00 %/);
  });
});
