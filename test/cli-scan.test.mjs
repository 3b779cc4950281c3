// moe-eval scan through a real child process (pipe and pty): the matrix, the allocation verified by
// evaluation, the report with its heatmap and KLD-against-k̄ plot, resume, usage errors.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { dir, fixture, sampleText } from './helpers/fixtures.mjs';
import { plain, runInTerminal } from './helpers/pty.mjs';
import { cli, runCli as run } from './helpers/cli.mjs';

let model;
let textFile;
before(async () => {
  model = await fixture('llama');
  textFile = join(dir, 'cli-scan.txt');
  writeFileSync(textFile, sampleText());
});

const common = () => ['-m', model, '-f', textFile, '-c', '64', '-b', '128', '-t', '2', '--chunks', '3'];

describe('moe-eval scan', () => {
  test('--json: the matrix, the allocation with its measured KLD, and the report; a rerun resumes', async () => {
    const out = join(dir, 'cli-scan', 'scan.jsonl');
    const report = join(dir, 'cli-scan', 'report');
    rmSync(join(dir, 'cli-scan'), { recursive: true, force: true });
    const r = await run(['scan', ...common(), '-o', out, '--mean-experts', '1.5', '--report', report, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.changes, ['experts=1', 'experts=3']);
    assert.equal(j.kld.length, 2);
    assert.equal(j.evaluated, 5);
    assert.equal(j.allocation.meanExperts, 1.5);
    assert.equal(j.allocation.measured.expertsPerToken.mean, 1.5);
    assert.equal(j.allocation.measuredKld, j.allocation.measured.kld.kldMean);
    assert.ok(j.allocation.predictedKld > 0 && j.allocation.measuredKld > 0);
    // uniform 1 (floor of 1.5) measured beside it; ceil is the default
    assert.deepEqual(j.allocation.uniform.map((u) => u.routing.label), ['experts=1']);
    for (const f of ['report.html', 'scan-heatmap.svg', 'kld-vs-experts-per-token.svg', 'results.csv']) assert.ok(existsSync(join(report, f)), f);
    const html = readFileSync(join(report, 'report.html'), 'utf8');
    assert.match(html, /Layer sensitivity/);
    assert.ok(readFileSync(join(report, 'results.csv'), 'utf8').split('\r\n')[0].endsWith(',expertsPerToken'));

    const again = await run(['scan', ...common(), '-o', out]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /0 evaluated, 5 already in/);
    assert.match(again.stdout, /│ layer │ experts=1 │ experts=3 │/);
  });

  test('sweep --report: KLD against k̄ for -ser, top-p and experts points, with k̄ in results.csv', async () => {
    const out = join(dir, 'cli-sweep-pareto', 'sweep.jsonl');
    const report = join(dir, 'cli-sweep-pareto', 'report');
    rmSync(join(dir, 'cli-sweep-pareto'), { recursive: true, force: true });
    const r = await run(['sweep', ...common(), '-o', out, '--kld', '--experts', '2', '3', '--ser', 'none', '1,0.3', '--top-p', 'none', '0.6', '--report', report, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.rows.length, 8);
    assert.ok(existsSync(join(report, 'kld-vs-experts-per-token.svg')));
    const csv = readFileSync(join(report, 'results.csv'), 'utf8').trim().split('\r\n');
    const col = csv[0].split(',').indexOf('expertsPerToken');
    const kbar = csv.slice(1).map((l) => Number(l.split(',').at(col - csv[0].split(',').length)));
    // k̄ as measured: the default 2, experts=3 exactly 3, the dynamic rules below their cap
    assert.deepEqual(kbar.slice().sort((a, b) => a - b).at(-1), 3);
    assert.ok(kbar.includes(2));
    assert.ok(kbar.some((k) => k > 1 && k < 2), `a dynamic rule below 2 experts: ${kbar}`);
    const svg = readFileSync(join(report, 'kld-vs-experts-per-token.svg'), 'utf8');
    for (const family of ['ser 1,t', 'top-p', 'experts']) assert.ok(svg.includes(family), family);
  });

  test('usage errors exit 2 and name the flag', async () => {
    const out = join(dir, 'cli-scan-bad.jsonl');
    const a = await run(['scan', ...common(), '-o', out, '--changes', 'experts=1', 'bogus=2']);
    assert.equal(a.code, 2, a.stderr);
    assert.match(a.stderr, /--changes/);
    const b = await run(['scan', ...common(), '-o', out, '--mean-experts', '1.5', '--active-params', '1000']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--mean-experts and --active-params/);
    const c = await run(['scan', ...common(), '-o', out, '--mean-experts', 'x']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--mean-experts/);
    const d = await run(['scan', ...common(), '-o', out, '--mean-experts', '0.5']);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /--mean-experts/);
  });

  test('at a terminal: progress of the cells, then the tables', async () => {
    const out = join(dir, 'cli-scan-tty.jsonl');
    rmSync(out, { force: true });
    const r = await runInTerminal([process.execPath, cli, 'scan', ...common(), '-o', out, '--changes', 'experts=1']);
    assert.equal(r.code, 0, plain(r.screen));
    assert.match(plain(r.screen), /scan \[[^\]]*\] \d\/3 points/);
    assert.match(plain(r.screen), /Mean KL-divergence with one MoE layer changed/);
  });
});
