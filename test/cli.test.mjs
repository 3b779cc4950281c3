// The moe-eval CLI through a real child process: exit codes, --json, stdin, help.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { dir, fixture, sampleText } from './helpers/fixtures.mjs';
import { runCli as run } from './helpers/cli.mjs';

let model;
let textFile;
before(async () => {
  model = await fixture('llama');
  textFile = join(dir, 'cli.txt');
  writeFileSync(textFile, sampleText());
});

describe('moe-eval CLI', () => {
  test('perplexity --json prints the result alone on stdout', async () => {
    const r = await run(['perplexity', '-m', model, '-f', textFile, '-c', '64', '-b', '128', '-t', '2', '--chunks', '4', '--experts', '3', '--expert-scale', 'uniform', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.ok(j.perplexity > 1);
    assert.equal(j.scoredTokens, 4 * 31);
    assert.deepEqual(j.routing.experts, [3, 3]);
    assert.equal(j.routing.expertScaleRule, 'uniform');
  });

  test('-f - reads stdin and gives the same number as the file', async () => {
    const a = await run(['perplexity', '-m', model, '-f', '-', '-c', '64', '-t', '2', '--chunks', '3', '--json'], sampleText());
    const b = await run(['perplexity', '-m', model, '-f', textFile, '-c', '64', '-t', '2', '--chunks', '3', '--json']);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(JSON.parse(a.stdout).perplexity, JSON.parse(b.stdout).perplexity);
  });

  test('llama.cpp flag spellings: -ngl, -ub, --override-kv', async () => {
    const r = await run(['perplexity', '-m', model, '-f', textFile, '-c', '64', '-ub', '32', '-ngl', '0', '-t', '2', '--chunks', '2', '--override-kv', 'llama.expert_used_count=int:3', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).routing.experts, [3, 3]);
  });

  test('usage errors exit 2 with a message; runtime failures exit 1', async () => {
    const bad = await run(['perplexity', '-m', model, '-f', textFile, '--experts', '99']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /integer in \[1, 8\]/);
    const unknown = await run(['perplexity', '-m', model, '-f', textFile, '--expertz', '2']);
    assert.equal(unknown.code, 2);
    const missing = await run(['perplexity', '-m', join(dir, 'missing.gguf'), '-f', textFile]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
    const none = await run([]);
    assert.equal(none.code, 2);
  });

  test('info and scale --json', async () => {
    const i = await run(['info', '-m', model, '--json']);
    assert.equal(i.code, 0, i.stderr);
    const info = JSON.parse(i.stdout);
    assert.equal(info.renormalized, true);
    // the memory of a context of the given sizes: -b 2048 holds 4 chunks of 512, -b 512 one
    const one = JSON.parse((await run(['info', '-m', model, '--json', '-c', '512', '-b', '512'])).stdout);
    assert.equal(info.contextMemory.contextSize, 512);
    assert.ok(info.contextMemory.model > 0 && info.contextMemory.compute > 0);
    assert.equal(info.contextMemory.context, 4 * one.contextMemory.context);
    const s = await run(['scale', '-N', '8', '-n', '2', '-s', '1', '--json']);
    const rows = JSON.parse(s.stdout).rows;
    assert.equal(rows[2].seed.toFixed(4), '0.9583');
    assert.equal(rows[2].renormalized.toFixed(4), '1.1713');
  });

  test('every command has --help with an example', async () => {
    for (const c of ['perplexity', 'sweep', 'compare', 'info', 'scale', 'quantize', 'export', 'demo']) {
      const r = await run([c, '--help']);
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.match(r.stdout, /Examples:/, c);
    }
  });
});
