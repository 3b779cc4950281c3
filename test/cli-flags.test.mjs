// The CLI's contract, command by command: every flag a command accepts takes effect or is refused,
// errors name the flag the user typed, and a routing is written the same way in every command.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { readGgufInfo } from '../dist/index.js';
import { dir, fixture, root, sampleText } from './helpers/fixtures.mjs';
import { cli, runCli as run } from './helpers/cli.mjs';

let model;
let text;
const small = ['-c', '64', '-b', '128', '-t', '2', '--chunks', '2'];
before(async () => {
  model = await fixture('llama');
  text = join(dir, 'cli-flags.txt');
  writeFileSync(text, sampleText());
});

/** Each command that loads a model, with the arguments it needs besides the model flags, and how to read n (experts per token) from its --json output. */
const COMMANDS = {
  perplexity: { args: () => ['-f', text, ...small], expertsUsed: (j) => Math.max(...j.routing.experts), context: true },
  sweep: { args: (tag) => ['-f', text, ...small, '-o', join(dir, `flags-${tag}.jsonl`)], expertsUsed: (j) => Math.max(...j.rows[0].experts), context: true },
  compare: { args: (tag) => ['-f', text, ...small, '--cache-dir', join(dir, `cache-${tag}`), '--report', join(dir, `report-${tag}`)], expertsUsed: (j) => j.rows[0].experts, context: true },
  calibrate: { args: (tag) => ['-f', text, ...small, '-o', join(dir, `profile-${tag}.json`)], expertsUsed: (j) => j.model.expertsUsed, context: true },
  info: { args: () => [], expertsUsed: (j) => j.expertsUsed, context: true },
  imatrix: { args: (tag) => ['-f', text, ...small, '-o', join(dir, `imatrix-${tag}.gguf`)], expertsUsed: (j) => Math.max(...j.routing.experts), context: true },
  export: { args: (tag) => ['-o', join(dir, `export-${tag}.gguf`)], expertsUsed: null, context: false },
};

describe('every command that loads a model takes the model flags, and they take effect', () => {
  for (const [name, c] of Object.entries(COMMANDS)) {
    test(`${name}: --override-kv reaches the model, -ngl and --rpc are checked, a bad value names its flag`, async () => {
      const ok = await run([name, '-m', model, ...c.args('kv'), '--override-kv', 'llama.expert_used_count=int:3', '--json']);
      assert.equal(ok.code, 0, ok.stderr);
      if (c.expertsUsed) assert.equal(c.expertsUsed(JSON.parse(ok.stdout)), 3, `${name} ran with the override`);
      else assert.equal((await readGgufInfo(join(dir, 'export-kv.gguf'))).kv['llama.expert_used_count'].value, 3, 'the exported file carries the override');

      const ngl = await run([name, '-m', model, ...c.args('ngl'), '-ngl', 'abc']);
      assert.equal(ngl.code, 2);
      assert.match(ngl.stderr, /Expected an integer for -ngl \(--n-gpu-layers\) but received "abc"/);

      const rpc = await run([name, '-m', model, ...c.args('rpc'), '--rpc', '127.0.0.1:1']);
      assert.equal(rpc.code, 1, `${name} --rpc to a closed port must fail, not run locally: ${rpc.stderr}`);
      assert.match(rpc.stderr, /RPC|connect/);
    });
    if (c.context) {
      test(`${name}: -c/-b/-ub/-t/-fa/-ctk/-ctv are checked and named in errors`, async () => {
        const ub = await run([name, '-m', model, ...c.args('ub'), '-ub', '-5']);
        assert.equal(ub.code, 2, ub.stderr);
        assert.match(ub.stderr, /for -ub but received number -5/);
        const t = await run([name, '-m', model, ...c.args('t'), '-t', '2x']);
        assert.equal(t.code, 2);
        assert.match(t.stderr, /Expected an integer for -t \(--threads\) but received "2x"/);
        const fa = await run([name, '-m', model, ...c.args('fa'), '-fa', 'maybe']);
        assert.equal(fa.code, 2, fa.stderr);
        assert.match(fa.stderr, /Expected on, off or auto for -fa \(--flash-attn\) but received "maybe"/);
        const ctv = await run([name, '-m', model, ...c.args('ctv'), '-ctv', 'q9_0']);
        assert.equal(ctv.code, 2, ctv.stderr);
        assert.match(ctv.stderr, /for -ctv \(--cache-type-v\) but received "q9_0"/);
      });
    }
  }

  test('the context sizes reach the context: -ub, -t and -fa are in the result', async () => {
    const r = await run(['perplexity', '-m', model, '-f', text, '-c', '64', '-b', '128', '-ub', '32', '-t', '1', '-fa', 'off', '--chunks', '2', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.ubatchSize, 32);
    assert.equal(j.threads, 1);
    assert.equal(j.flashAttention, 'off');
    const s = await run(['sweep', '-m', model, '-f', text, '-c', '64', '-b', '128', '-ub', '32', '-t', '1', '--chunks', '2', '-o', join(dir, 'ctx.jsonl'), '--json']);
    assert.equal(JSON.parse(s.stdout).rows[0].threads, 1);
  });
});

describe('bench', () => {
  test('llama-bench JSON rows per routing; the model flags take effect; -ngl and -p are checked', async () => {
    const r = await run(['bench', '-m', model, '-p', '16', '-n', '4', '-r', '1', '-t', '1', '--experts', '1', '2', '-o', 'json', '--override-kv', 'llama.expert_used_count=int:3']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout);
    assert.deepEqual(rows.map((x) => [x.n_prompt, x.n_gen]), [[16, 0], [0, 4], [16, 0], [0, 4]]);
    assert.ok(rows.every((x) => typeof x.avg_ts === 'number' && x.n_threads === 1));
    assert.ok(rows.every((x) => /override-kv llama.expert_used_count=int:3/.test(x.routing)), rows.map((x) => x.routing).join());
    const ngl = await run(['bench', '-m', model, '-ngl', 'x']);
    assert.equal(ngl.code, 2);
    assert.match(ngl.stderr, /Expected an integer for -ngl/);
    const p = await run(['bench', '-m', model, '-p', '16,x']);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /Expected comma-separated integers for --n-prompt/);
    const c = await run(['bench', '-m', model, '-c', '64']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /sizes the --kld evaluation; give --kld FILE too/);
  });
});

describe('perplexity --hellaswag | --winogrande | --multiple-choice', () => {
  test("task accuracy through the CLI, with flips against the model's own routing under another routing", async () => {
    const demo = join(root, 'models', 'demo', 'moe-demo.gguf');
    const tasks = join(root, 'models', 'demo', 'tasks', 'winogrande.csv');
    const r = await run(['perplexity', '-m', demo, '--winogrande', '-f', tasks, '--winogrande-tasks', '40', '-c', '128', '-t', '2', '--experts', '1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.task, 'winogrande');
    assert.equal(j.tasks, 40);
    assert.equal(j.routing.label, 'experts=1');
    assert.equal(j.reference.routing.label, 'default');
    const flipped = j.perTask.filter((t, i) => t.correct !== j.reference.perTask[i].correct).length;
    assert.equal(j.reference.flips.rightToWrong + j.reference.flips.wrongToRight, flipped);
    const bad = await run(['perplexity', '-m', demo, '-f', tasks, '--winogrande-tasks', '4']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--winogrande-tasks needs --winogrande/);
  });
});

describe('imatrix and quantize', () => {
  test('an IQ quant from a matrix moe-eval imatrix wrote; without a matrix the type is refused naming --imatrix', async () => {
    const m = join(dir, 'cli-imatrix.gguf');
    const i = await run(['imatrix', '-m', model, '-f', text, ...small, '-o', m]);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /wrote .*cli-imatrix\.gguf: \d+ tensors/);
    const out = join(dir, 'cli-iq2.gguf');
    const q = await run(['quantize', model, out, 'iq2_xxs', '--imatrix', m, '--tensor-type', 'attn=q8_0']);
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, /IQ2_XXS/);
    const bad = await run(['quantize', model, join(dir, 'cli-iq2-bad.gguf'), 'iq2_xxs']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--imatrix/);
  });
});

describe('one routing syntax', () => {
  test('the same flags in perplexity, sweep, compare and export give the same routing', async () => {
    const flags = ['--experts', '0:3;1:1', '--expert-scale', 'uniform', '--gate-scale', '1.5'];
    const p = JSON.parse((await run(['perplexity', '-m', model, '-f', text, ...small, ...flags, '--json'])).stdout);
    const s = JSON.parse((await run(['sweep', '-m', model, '-f', text, ...small, ...flags, '-o', join(dir, 'same.jsonl'), '--json'])).stdout);
    const c = JSON.parse((await run(['compare', '-m', model, '-f', text, ...small, ...flags, '--cache-dir', join(dir, 'cache-same'), '--report', join(dir, 'report-same'), '--json'])).stdout);
    assert.equal(p.routing.label, 'experts=0:3;1:1 expert-scale=uniform gate-scale=1.5');
    assert.equal(s.rows[0].routing, p.routing.label);
    assert.equal(c.rows[0].routing, p.routing.label);
    assert.equal(s.rows[0].perplexity, p.perplexity);
    assert.equal(c.rows[0].perplexity, p.perplexity);
    const e = await run(['export', '-m', model, '-o', join(dir, 'same.gguf'), '--expert-scale', '0:2', '--json']);
    assert.equal(JSON.parse(e.stdout).routing.label, 'expert-scale=0:2;1:1');
  });

  test('several values make a grid in sweep and compare, and are refused where one routing is evaluated', async () => {
    const s = JSON.parse((await run(['sweep', '-m', model, '-f', text, ...small, '--experts', '2', '3', '--ser', 'none', '1,0.5', '-o', join(dir, 'grid.jsonl'), '--json'])).stdout);
    assert.deepEqual(s.rows.map((r) => r.routing), ['default', 'ser=1,0.5', 'experts=3', 'experts=3 ser=1,0.5']);
    // repeated flags and space-separated values are the same thing
    const t = JSON.parse((await run(['sweep', '-m', model, '-f', text, ...small, '--experts', '2 3', '--ser', 'none', '--ser', '1,0.5', '-o', join(dir, 'grid.jsonl'), '--json'])).stdout);
    assert.equal(t.evaluated, 0, 'the same four points, resumed');
    const p = await run(['perplexity', '-m', model, '-f', text, ...small, '--experts', '1 2']);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /perplexity evaluates one routing, but --experts has 2 values \(1 2\); use `moe-eval sweep`/);
  });

  test('scale: -N is the expert count, --experts is not accepted there', async () => {
    const r = await run(['scale', '-N', '8', '-n', '2', '--json']);
    assert.equal(JSON.parse(r.stdout).expertCount, 8);
    const bad = await run(['scale', '--experts', '8']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown option --experts \(did you mean --expert-count\?\)/);
  });
});

describe('messages in the user\'s words', () => {
  const cases = [
    [['-c', 'abc'], /Expected an integer for -c \(--ctx-size\) but received "abc"/],
    [['--ser', '1,0'], /for --ser \(t\) but received number 0/],
    [['--ser', '3,0.3'], /--ser \(Kmin\) below the experts per token \(2\)/],
    [['--expert-scale', 'calibrated'], /'calibrated' needs --profile/],
    [['--experts', '3', '--profile', 'p.json'], /--profile is only used with --expert-scale calibrated/],
    [['--expert', '3'], /unknown option --expert \(did you mean --experts\?\)/],
    [['--mask-experts', '9'], /expert id in \[0, 7\].*for --mask-experts\[0\] but received number 9/],
    [['--mask-experts', '3,,5'], /expert id in \[0, 7\] for --mask-experts\[1\] but received ""/],
  ];
  for (const [args, message] of cases) {
    test(`perplexity ${args.join(' ')}`, async () => {
      const r = await run(['perplexity', '-m', model, '-f', text, ...small, ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    });
  }

  test('a misspelled command gets a suggestion', async () => {
    const r = await run(['perplexty']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Did you mean perplexity/);
  });

  test('KL-divergence: a base of another context size names -c; more chunks than the base holds names --chunks', async () => {
    const base = join(dir, 'c64.kld');
    assert.equal((await run(['perplexity', '-m', model, '-f', text, ...small, '--chunks', '3', '--kl-divergence-base', base])).code, 0);
    const c = await run(['perplexity', '-m', model, '-f', text, '-c', '128', '--kl-divergence-base', base, '--kl-divergence']);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /made with -c 64; this evaluation uses -c 128/);
    const n = await run(['perplexity', '-m', model, '-c', '64', '--chunks', '5', '--kl-divergence-base', base, '--kl-divergence']);
    assert.equal(n.code, 2);
    assert.match(n.stderr, /Expected at most 3 for --chunks: the base .* holds 3 chunks, but received 5/);
  });

  test('compare refuses models of different vocabularies before any work, naming both', async () => {
    const other = await fixture('llama', { vocabFile: join(root, 'vendor', 'llama.cpp', 'models', 'ggml-vocab-gpt-2.gguf') });
    const cache = join(dir, 'cache-vocab');
    const r = await run(['compare', '-m', model, '-m', other, '-f', text, ...small, '--cache-dir', cache, '--report', join(dir, 'report-vocab')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has a vocabulary of \d+ tokens and .* one of 32000: KL-divergence needs models with the same vocabulary/);
    assert.ok(!existsSync(cache), 'nothing was written');
  });
});

describe('smaller promises', () => {
  test('every option of every command is described in --help', async () => {
    // every command the top-level help lists
    const commands = [...(await run(['--help'])).stdout.matchAll(/^\s+moe-eval ([a-z-]+)/gm)].map((m) => m[1]);
    assert.ok(commands.includes('perplexity') && commands.includes('demo') && commands.length >= 12, commands.join(' '));
    for (const c of commands) {
      const r = await run([c, '--help']);
      assert.equal(r.code, 0, c);
      const section = r.stdout.split('Options:')[1].split(/\n\s*\n/)[0];
      const options = section.split('\n').filter((l) => /^\s{0,6}(-\w|--)/.test(l));
      assert.ok(options.length > 0, c);
      for (const line of options) {
        // "  -c, --ctx-size  tokens per chunk (default 512)  [string]": text between the flags and the type
        const description = line.replace(/^\s+(-[\w-]+,?\s*)+/, '').replace(/\[[^\]]*\]/g, '').trim();
        assert.ok(description.length > 3, `${c}: ${line.trim()} has no description`);
      }
    }
  });

  test('info prints facts without an empty header row; -ngl on a CPU build gets a notice', async () => {
    const r = await run(['info', '-m', model, '-ngl', '99']);
    assert.equal(r.code, 0, r.stderr);
    const firstRow = r.stdout.split('\n')[1];
    assert.match(firstRow, /architecture/);
    assert.match(r.stderr, /-ngl \(--n-gpu-layers\) 99: this build has no GPU backend/);
  });

  test('calibrate -o creates the folder, like every other output', async () => {
    const out = join(dir, 'new', 'folder', 'profile.json');
    const r = await run(['calibrate', '-m', model, '-f', text, ...small, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(readFileSync(out, 'utf8')).format, 'moe-eval-routing-profile');
  });

  test('quantize says the size and bits per weight it wrote', async () => {
    const out = join(dir, 'q', 'model-q8.gguf');
    const r = await run(['quantize', model, out, 'q8_0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote .*model-q8\.gguf: Q8_0, [\d.]+ MiB at 8\.5\d bits per weight \(was [\d.]+ MiB at 32\.\d+\)/);
  });

  test('a routing changed by --override-kv is labelled so, not "default"', async () => {
    const r = await run(['perplexity', '-m', model, '-f', text, ...small, '--override-kv', 'llama.expert_used_count=int:3', '--json']);
    assert.equal(JSON.parse(r.stdout).routing.label, 'default (override-kv llama.expert_used_count=int:3)');
  });
});
