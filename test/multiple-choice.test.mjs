// multipleChoice(): HellaSwag, Winogrande and binary multiple-choice accuracy equal to llama-perplexity's
// (built from the same vendor tree) on the same files, under the default and a non-default routing;
// flips against a reference; malformed task files refused with a typed error naming the line or byte.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { MoeEvalError, compareAccuracy, loadModel, multipleChoice, writeMultipleChoiceFile } from '../dist/index.js';
import { makeTasks } from '../scripts/make-demo-tasks.mjs';
import { dir, fixture, root } from './helpers/fixtures.mjs';
import { rng } from './helpers/gguf-fuzz.mjs';
import { llamaPerplexity } from './helpers/peers.mjs';

const demo = join(root, 'models', 'demo', 'moe-demo.gguf');
const tasksDir = join(root, 'models', 'demo', 'tasks');
const files = {
  hellaswag: join(tasksDir, 'hellaswag.txt'),
  winogrande: join(tasksDir, 'winogrande.csv'),
  'multiple-choice': join(tasksDir, 'multiple-choice.bin'),
};

/**
 * Runs llama-perplexity on a task file and reads what it prints: the per-task lines and the final
 * score. The text formats are passed with -bf (read as is): -f strips the file's last newline, after
 * which llama-perplexity's Winogrande reader drops the last line (see docs/multiple-choice.md). The
 * common logger can lose its last lines when the process exits: such a run is repeated.
 */
async function peer(task, file, { tasks, c = 128, b, np, kv, expect } = {}) {
  const flag = { hellaswag: '--hellaswag', winogrande: '--winogrande', 'multiple-choice': '--multiple-choice' }[task];
  const args = ['-m', demoOr(file), '-bf', file.path ?? file, flag, '-c', String(c), '-t', '2'];
  if (tasks !== undefined) args.push(`${flag}-tasks`, String(tasks));
  if (b !== undefined) args.push('-b', String(b));
  if (np !== undefined) args.push('-np', String(np));
  if (kv) args.push('--override-kv', kv);
  let out = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const { stdout, stderr } = await promisify(execFile)(llamaPerplexity, args, { maxBuffer: 64 << 20 });
    out = stdout + stderr;
    const r = parsePeer(task, out);
    if (r.complete && (expect === undefined || r.perTask.length === expect)) return r;
  }
  throw new Error(`llama-perplexity's output stayed incomplete in 3 runs:\n${out.slice(-3000)}`);
}
function demoOr(file) {
  return file.model ?? demo;
}

function parsePeer(task, out) {
  const perTask = [];
  if (task === 'hellaswag') {
    const rows = [...out.matchAll(/^(\d+)\t([0-9.]+)%\t\[([0-9.]+)%, ([0-9.]+)%\]$/gm)];
    let prev = 0;
    for (const m of rows) {
      const n = Math.round((Number(m[2]) * Number(m[1])) / 100);
      perTask.push(n > prev);
      prev = n;
    }
    const last = rows.at(-1);
    return { complete: rows.length > 0, perTask, accuracy: Number(last?.[2]), interval: [Number(last?.[3]), Number(last?.[4])] };
  }
  if (task === 'winogrande') {
    const rows = [...out.matchAll(/^(\d+)\t([0-9.]+)\t +(\S+) +(\S+) +(\d) +(\d)$/gm)];
    for (const m of rows) perTask.push({ correct: m[5] === m[6], chosen: Number(m[5]) - 1, scores: [Number(m[3]), Number(m[4])] });
    const f = /Final Winogrande score\((\d+) tasks\): ([0-9.]+) \+\/- ([0-9.]+)/.exec(out);
    return { complete: rows.length > 0, perTask, running: Number(rows.at(-1)?.[2]), final: f && { tasks: Number(f[1]), accuracy: Number(f[2]), uncertainty: Number(f[3]) } };
  }
  const rows = [...out.matchAll(/^(\d+)\t([0-9.]+)$/gm)];
  let prev = 0;
  for (const m of rows) {
    const n = Math.round((Number(m[2]) * Number(m[1])) / 100);
    perTask.push(n > prev);
    prev = n;
  }
  const f = /Final result: ([0-9.]+) \+\/- ([0-9.]+)/.exec(out);
  const chance = /Random chance: ([0-9.]+) \+\/- ([0-9.]+)/.exec(out);
  return { complete: f !== null && chance !== null, perTask, accuracy: Number(f?.[1]), uncertainty: Number(f?.[2]), chance: Number(chance?.[1]) };
}

/** Equal to the digits llama-perplexity prints (it computes in single precision; the last digit may round the other way). */
function printedEqual(actual, printed, decimals, what) {
  assert.ok(Math.abs(actual - printed) <= 0.5 * 10 ** -decimals + 1e-6, `${what}: ${actual} vs llama-perplexity's ${printed}`);
}

let model;
before(async () => {
  model = await loadModel(demo);
});
after(() => model.dispose());

describe('multipleChoice() equals llama-perplexity', () => {
  test('HellaSwag: all tasks (drawn in llama-perplexity\'s random order), accuracy, interval and every task', async () => {
    const r = await multipleChoice(model, { task: 'hellaswag', file: files.hellaswag, tasks: 120, contextSize: 128, threads: 2 });
    const p = await peer('hellaswag', files.hellaswag, { tasks: 120, expect: 120 });
    assert.equal(r.tasks, 120);
    assert.equal(r.tasksInFile, 120);
    printedEqual(r.accuracy, p.accuracy, 8, 'accuracy');
    printedEqual(r.interval[0], p.interval[0], 4, 'interval low');
    printedEqual(r.interval[1], p.interval[1], 4, 'interval high');
    assert.deepEqual(r.perTask.map((t) => t.correct), p.perTask);
    assert.equal(new Set(r.perTask.map((t) => t.index)).size, 120);
    assert.ok(r.accuracy > 40, `the trained demo model beats chance (25 %): ${r.accuracy}`);
  });

  test('HellaSwag: the default 400 tasks of a smaller file, and a random subset with small batches (several decodes per group)', async () => {
    const all = await multipleChoice(model, { task: 'hellaswag', file: files.hellaswag, contextSize: 128, threads: 2 });
    assert.equal(all.tasks, 120);
    const r = await multipleChoice(model, { task: 'hellaswag', file: files.hellaswag, tasks: 37, contextSize: 64, batchSize: 100, threads: 2 });
    const p = await peer('hellaswag', files.hellaswag, { tasks: 37, c: 64, b: 100, expect: 37 });
    assert.equal(r.tasks, 37);
    printedEqual(r.accuracy, p.accuracy, 8, 'accuracy');
    assert.deepEqual(r.perTask.map((t) => t.correct), p.perTask);
  });

  test('Winogrande: all tasks (header skipped), every task\'s two scores, the final score and ±', async () => {
    const r = await multipleChoice(model, { task: 'winogrande', file: files.winogrande, contextSize: 128, threads: 2 });
    const p = await peer('winogrande', files.winogrande, { expect: 120 });
    assert.equal(r.skippedHeader, true);
    assert.equal(r.tasks, 120);
    assert.equal(p.final.tasks, 120);
    printedEqual(r.accuracy, p.final.accuracy, 4, 'accuracy');
    printedEqual(r.uncertainty, p.final.uncertainty, 4, '±');
    assert.equal(r.perTask.length, p.perTask.length);
    r.perTask.forEach((t, i) => {
      assert.equal(t.chosen, p.perTask[i].chosen, `task ${i}`);
      assert.equal(t.correct, p.perTask[i].correct, `task ${i}`);
      t.scores.forEach((s, k) => printedEqual(s, p.perTask[i].scores[k], 6, `task ${i} score ${k + 1}`));
    });
  });

  test('Winogrande: a random subset (llama-perplexity\'s single-precision draw) with two tasks per decode', async () => {
    const r = await multipleChoice(model, { task: 'winogrande', file: files.winogrande, tasks: 45, contextSize: 64, batchSize: 64, threads: 2 });
    const p = await peer('winogrande', files.winogrande, { tasks: 45, c: 64, b: 64, expect: 45 });
    assert.equal(r.tasks, 45);
    assert.equal(p.final, null, 'llama-perplexity prints no final score under 100 tasks');
    printedEqual(r.accuracy, p.running, 4, 'accuracy');
    r.perTask.forEach((t, i) => t.scores.forEach((s, k) => printedEqual(s, p.perTask[i].scores[k], 6, `task ${i} score ${k + 1}`)));
  });

  test('multiple choice (binary): all tasks with 2 to 5 answers, the final score, ± and random chance', async () => {
    const r = await multipleChoice(model, { task: 'multiple-choice', file: files['multiple-choice'], parallel: 8, contextSize: 128, threads: 2 });
    const p = await peer('multiple-choice', files['multiple-choice'], { np: 8 });
    assert.equal(r.tasks, 120);
    printedEqual(r.accuracy, p.accuracy, 4, 'accuracy');
    printedEqual(r.uncertainty, p.uncertainty, 4, '±');
    printedEqual(r.chance, p.chance, 4, 'random chance');
    assert.deepEqual(r.perTask.map((t) => t.correct), p.perTask);
  });

  test('multiple choice (binary): a random subset, each task read at its position', async () => {
    const r = await multipleChoice(model, { task: 'multiple-choice', data: readFileSync(files['multiple-choice']), tasks: 33, parallel: 8, contextSize: 128, threads: 2 });
    const p = await peer('multiple-choice', files['multiple-choice'], { tasks: 33, np: 8 });
    assert.equal(r.tasks, 33);
    printedEqual(r.accuracy, p.accuracy, 4, 'accuracy');
    printedEqual(r.uncertainty, p.uncertainty, 4, '±');
    assert.deepEqual(r.perTask.map((t) => t.correct), p.perTask);
  });

  test('a fixture model of random weights: HellaSwag task by task', async () => {
    const path = await fixture('llama');
    const m = await loadModel(path);
    try {
      const r = await multipleChoice(m, { task: 'hellaswag', file: files.hellaswag, tasks: 25, contextSize: 128, threads: 2 });
      const p = await peer('hellaswag', { path: files.hellaswag, model: path }, { tasks: 25, expect: 25 });
      printedEqual(r.accuracy, p.accuracy, 8, 'accuracy');
      assert.deepEqual(r.perTask.map((t) => t.correct), p.perTask);
    } finally {
      await m.dispose();
    }
  });
});

describe('multipleChoice() under a routing, with flips', () => {
  test('experts: 1 changes the scores and equals llama-perplexity with --override-kv llama.expert_used_count=int:1', async () => {
    const base = await multipleChoice(model, { task: 'winogrande', file: files.winogrande, contextSize: 128, threads: 2 });
    const r = await multipleChoice(model, { task: 'winogrande', file: files.winogrande, routing: { experts: 1 }, contextSize: 128, threads: 2 });
    const p = await peer('winogrande', files.winogrande, { kv: 'llama.expert_used_count=int:1', expect: 120 });
    assert.notDeepEqual(r.perTask.map((t) => t.scores), base.perTask.map((t) => t.scores));
    printedEqual(r.accuracy, p.final.accuracy, 4, 'accuracy');
    printedEqual(r.uncertainty, p.final.uncertainty, 4, '±');
    r.perTask.forEach((t, i) => {
      assert.equal(t.chosen, p.perTask[i].chosen, `task ${i}`);
      // the runtime routing equals the overridden model to ~1e-4 in the logits, not bit for bit
      t.scores.forEach((s, k) => assert.ok(Math.abs(s - p.perTask[i].scores[k]) < 2e-4, `task ${i} score ${k + 1}: ${s} vs ${p.perTask[i].scores[k]}`));
    });
  });

  test('flips against a reference routing agree with the two per-task results; McNemar is exact', async () => {
    const r = await multipleChoice(model, { task: 'hellaswag', file: files.hellaswag, tasks: 120, routing: { experts: 1 }, reference: {}, contextSize: 128, threads: 2 });
    const base = await multipleChoice(model, { task: 'hellaswag', file: files.hellaswag, tasks: 120, contextSize: 128, threads: 2 });
    const ref = r.reference;
    assert.deepEqual(ref.perTask, base.perTask, 'the reference run is the default routing run');
    assert.equal(ref.accuracy, base.accuracy);
    const r2w = [];
    const w2r = [];
    r.perTask.forEach((t, i) => {
      assert.equal(t.index, ref.perTask[i].index);
      if (ref.perTask[i].correct && !t.correct) r2w.push(i);
      if (!ref.perTask[i].correct && t.correct) w2r.push(i);
    });
    assert.deepEqual(ref.flips.rightToWrongTasks, r2w);
    assert.deepEqual(ref.flips.wrongToRightTasks, w2r);
    assert.equal(ref.flips.rightToWrong - ref.flips.wrongToRight, ref.correct - r.correct);
    assert.ok(ref.flips.rightToWrong + ref.flips.wrongToRight > 0, 'one expert per token flips some answers');
    assert.ok(Math.abs(ref.difference - (r.accuracy - ref.accuracy)) < 1e-12);
    // exact binomial tail with BigInt binomial coefficients
    const n = r2w.length + w2r.length;
    const k = Math.min(r2w.length, w2r.length);
    let tail = 0n;
    let c = 1n;
    for (let i = 0; i <= k; i++) {
      tail += c;
      c = (c * BigInt(n - i)) / BigInt(i + 1);
    }
    const p = Math.min(1, (2 * Number(tail)) / 2 ** n);
    assert.ok(Math.abs(ref.pValue - p) < 1e-12 * Math.max(1, p), `${ref.pValue} vs ${p}`);
    // the same comparison from two separate runs (what a sweep does with one reference run)
    assert.deepEqual(compareAccuracy(r, base), { flips: ref.flips, difference: ref.difference, pValue: ref.pValue });
    assert.throws(() => compareAccuracy(r, { accuracy: 1, perTask: base.perTask.slice(1) }), TypeError);
  });

  test('a reference Model or Context; a Context target runs with its routing', async () => {
    const ctx = await model.createContext({ contextSize: 128, threads: 2, routing: { experts: 1 } });
    const refCtx = await model.createContext({ contextSize: 128, threads: 2 });
    try {
      const a = await multipleChoice(ctx, { task: 'multiple-choice', file: files['multiple-choice'], parallel: 8, tasks: 40, reference: model });
      const b = await multipleChoice(ctx, { task: 'multiple-choice', file: files['multiple-choice'], parallel: 8, tasks: 40, reference: refCtx });
      assert.deepEqual(a.routing.experts, [1, 1, 1, 1]);
      assert.deepEqual(a.perTask, b.perTask);
      assert.deepEqual(a.reference.flips, b.reference.flips);
      assert.deepEqual(a.reference.routing.experts, [2, 2, 2, 2]);
      const self = await multipleChoice(model, { task: 'multiple-choice', file: files['multiple-choice'], parallel: 8, tasks: 40, contextSize: 128, threads: 2, reference: model });
      assert.equal(self.reference.flips.rightToWrong + self.reference.flips.wrongToRight, 0);
      assert.equal(self.reference.pValue, 1);
    } finally {
      await ctx.dispose();
      await refCtx.dispose();
    }
  });

  test('progress, abort', async () => {
    const seen = [];
    await multipleChoice(model, { task: 'winogrande', file: files.winogrande, tasks: 20, contextSize: 64, threads: 2, reference: model, onProgress: (p) => seen.push(p) });
    assert.deepEqual(seen.at(-1), { run: 'reference', tasksDone: 20, tasksTotal: 20 });
    assert.ok(seen.some((p) => p.run === 'target' && p.tasksDone === 20));
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await assert.rejects(multipleChoice(model, { task: 'winogrande', file: files.winogrande, signal: ac.signal }), /stop/);
  });
});

describe('multipleChoice() refuses what it cannot score', () => {
  const kinds = ['hellaswag', 'winogrande', 'multiple-choice'];
  const taskError = (pattern) => (e) => e instanceof MoeEvalError && e.code === 'ERR_TASK_FILE' && pattern.test(e.message);

  test('arguments', async () => {
    await assert.rejects(multipleChoice(model, { task: 'arc', text: '' }), TypeError);
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', text: 'x', taks: 3 }), /Did you mean 'tasks'/);
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', text: 'x', tasks: 0 }), RangeError);
    await assert.rejects(multipleChoice(model, { task: 'hellaswag' }), /exactly one of file, text or data/);
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', text: 'x' }), TypeError);
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', text: 'x', reference: 3 }), TypeError);
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', text: 'x', routing: { experts: 99 } }), RangeError);
  });

  test('HellaSwag: line count, gold index', async () => {
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', text: 'a\n0\nb\nc\nd\ne\nf\n' }), taskError(/7 lines is not a multiple of 6/));
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', text: 'a\n0\nb\nc\nd\ne\nctx\nfour\nb\nc\nd\ne\n' }), taskError(/line 8: expected the gold ending index/));
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', text: '' }), taskError(/no tasks/));
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', data: Buffer.from('ctx\n0\n\xff\nb\nc\nd\n', 'latin1') }), taskError(/invalid UTF-8 at line 3 \(byte 6\)/));
  });

  test('Winogrande: fields, blank, answer (the line named)', async () => {
    const ok = '0,The man _ here.,he,she,1\n';
    await assert.rejects(multipleChoice(model, { task: 'winogrande', text: ok + '1,no fields\n' }), taskError(/line 2: expected 5 comma-separated fields/));
    await assert.rejects(multipleChoice(model, { task: 'winogrande', text: ok + '1,No blank.,a,b,1\n' }), taskError(/line 2: the sentence has no _/));
    await assert.rejects(multipleChoice(model, { task: 'winogrande', text: ok + '1,"A, _ b",a,b,3\n' }), taskError(/line 2: expected the answer 1 or 2/));
    await assert.rejects(multipleChoice(model, { task: 'winogrande', text: ok + '1,"unclosed _ quote,a,b,1\n' }), taskError(/line 2: expected 5/));
    await assert.rejects(multipleChoice(model, { task: 'winogrande', text: 'index,sentence,option1,option2,answer\n' }), taskError(/no tasks/));
  });

  test('binary: byte offsets of counts, lengths and positions that do not fit', async () => {
    const good = Buffer.from(writeMultipleChoiceFile([{ question: 'In the beginning God', answers: ['created the heaven', 'slept'], labels: [1, 0] }]));
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: good.subarray(0, 3) }), taskError(/no tasks \(the file has 3 bytes/));
    const zero = Buffer.from(good);
    zero.writeUInt32LE(0, 0);
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: zero }), taskError(/task count at byte 0 is 0/));
    const huge = Buffer.from(good);
    huge.writeUInt32LE(0xffffffff, 0);
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: huge }), taskError(/task count at byte 0 is 4294967295/));
    const longString = Buffer.from(good);
    longString.writeUInt32LE(0x7fffffff, 8);
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: longString }), taskError(/question of task 0 at byte 8 is 2147483647 bytes long/));
    const answers = Buffer.from(good);
    answers.writeUInt32LE(101, 12 + 20);
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: answers }), taskError(/number of answers of task 0 at byte 32 is 101/));
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: good.subarray(0, good.length - 2) }), taskError(/runs past the end of the file/));
    const two = Buffer.from(writeMultipleChoiceFile([
      { question: 'a', answers: ['b', 'c'], labels: [1, 0] },
      { question: 'd', answers: ['e', 'f'], labels: [0, 1] },
    ]));
    two.writeUInt32LE(1 << 30, 4);
    two.writeUInt32LE(1 << 30, 8);
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: two, tasks: 1 }), taskError(/position of task \d \(byte \d+\) is 1073741824, past the end/));
    const empty = Buffer.from(writeMultipleChoiceFile([{ question: 'q', answers: ['a', ''], labels: [1, 0] }]));
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', data: empty }), taskError(/answer 2 is empty/));
  });

  test('a task longer than the context, or with more answers than sequences, as llama-perplexity stops', async () => {
    await assert.rejects(multipleChoice(model, { task: 'hellaswag', file: files.hellaswag, tasks: 5, contextSize: 8 }), (e) => e.code === 'ERR_TASK_TOO_LONG' && /needs \d+ tokens but the context holds 32 \(parallel 4 × contextSize 8\)/.test(e.message));
    await assert.rejects(multipleChoice(model, { task: 'multiple-choice', file: files['multiple-choice'] }), (e) => e.code === 'ERR_TASK_TOO_LONG' && /has 5 answers; a decode holds 4 sequences \(raise parallel/.test(e.message));
  });

  test('fuzzed task files (seeded mutations of valid ones): a result or a typed error, never a crash or hang', { timeout: 240_000 }, async () => {
    const small = makeTasks(readFileSync(join(root, 'models', 'demo', 'heldout.txt'), 'utf8'), 4);
    const valid = {
      hellaswag: Buffer.from(small.hellaswag),
      winogrande: Buffer.from(small.winogrande),
      'multiple-choice': Buffer.from(small.multipleChoice),
    };
    const counts = { ok: 0, ERR_TASK_FILE: 0, ERR_TASK_TOO_LONG: 0 };
    for (const kind of kinds) {
      for (let seed = 1; seed <= 60; seed++) {
        const r = rng(seed * 7919 + kind.length);
        const buf = Buffer.from(valid[kind]);
        const data = mutate(buf, r, kind);
        try {
          const res = await multipleChoice(model, { task: kind, data, contextSize: 64, parallel: 8, threads: 2, ...(r.next() < 0.3 ? { tasks: 1 + r.int(5) } : {}) });
          assert.ok(res.tasks >= 1 && res.correct <= res.tasks);
          counts.ok++;
        } catch (e) {
          assert.ok(e instanceof MoeEvalError && (e.code === 'ERR_TASK_FILE' || e.code === 'ERR_TASK_TOO_LONG'), `${kind} seed ${seed}: ${e?.stack ?? e}`);
          assert.match(e.message, /line \d+|byte \d+|no tasks|lines is not a multiple|task \d+|needs \d+ tokens|answers; a decode/, `${kind} seed ${seed}: ${e.message}`);
          counts[e.code]++;
        }
      }
    }
    assert.ok(counts.ok > 0 && counts.ERR_TASK_FILE > 0, JSON.stringify(counts));
  });
});

/** One seeded mutation aimed at what the format's reader trusts. */
function mutate(buf, r, kind) {
  const what = r.int(7);
  if (what === 0) return buf.subarray(0, r.int(buf.length)); // truncation
  if (what === 1) {
    for (let k = 0; k < 1 + r.int(4); k++) buf[r.int(buf.length)] = r.int(256); // byte flips
    return buf;
  }
  if (kind === 'multiple-choice') {
    // a huge or off-by-some count, length or position at a 4-byte boundary of the header or a record
    const at = 4 * r.int(Math.min(buf.length, 64) >> 2);
    const v = r.pick([0, 1, 100, 101, 0x7fffffff, 0xffffffff, buf.length, buf.length - 1, buf.readUInt32LE(at) + 1 + r.int(8)]);
    buf.writeUInt32LE(v >>> 0, at);
    return buf;
  }
  const text = buf.toString('utf8');
  const lines = text.split('\n');
  const i = r.int(lines.length);
  if (what === 2) lines.splice(i, 1); // a missing line
  else if (what === 3) lines[i] = lines[i].replace(/,/g, ''); // missing fields
  else if (what === 4) lines[i] = lines[i].replace(/_/g, '') + '\\"\\x00"'; // bad escapes, no blank
  else if (what === 5) lines[i] = '"' + lines[i]; // an unbalanced quote
  else lines.splice(i, 0, lines[r.int(lines.length)]); // a duplicated line
  return Buffer.from(lines.join('\n'));
}
