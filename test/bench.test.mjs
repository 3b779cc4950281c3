// bench(): llama-bench's output, checked against llama-bench itself (built from the same vendor tree), and
// dropped experts that skip their work (vendor/patches/0004) with the results of computing them with weight 0.
// No timing assertions: speed is shown by bench/llama-bench.mjs and bench/skip-experts.mjs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { BENCH_FIELDS, bench, benchStatistics, formatBench, loadModel } from '../dist/index.js';
import { ARCHS, fixture, maxAbsDiff, sampleText } from './helpers/fixtures.mjs';
import { llamaBench } from './helpers/peers.mjs';

const run = promisify(execFile);
// pp16, tg4 and pp16+tg4 (llama-bench's order for -p 16 -n 4 -pg 16,4), 2 repetitions, 1 thread
const TESTS = [{ nPrompt: 16, nGen: 0 }, { nPrompt: 0, nGen: 4 }, { nPrompt: 16, nGen: 4 }];
const PEER_ARGS = ['-p', '16', '-n', '4', '-pg', '16,4', '-r', '2', '-t', '1', '-ngl', '0'];
const TIMING = new Set(['test_time', 'avg_ns', 'stddev_ns', 'avg_ts', 'stddev_ts', 'samples_ns', 'samples_ts']);

async function peer(path, format) {
  const { stdout } = await run(llamaBench, ['-m', path, ...PEER_ARGS, '-o', format], { maxBuffer: 16 << 20 });
  return stdout;
}

/** llama-bench's JSON rows as bench() rows: its values, our statistics from its samples, the default routing's columns. */
function asOurRows(peerRows) {
  return peerRows.map((p) => ({
    ...p,
    ...benchStatistics(p.samples_ns, p.n_prompt + p.n_gen),
    samples_ns: p.samples_ns,
    routing: 'default', experts: '2', expert_scale: '1', gate_scale: '1', ser: '', k_mean: 2, kld_mean: null, same_top: null,
  }));
}

function parseCsv(text) {
  return text.trim().split('\n').map((line) => {
    const cells = [];
    let i = 0;
    while (i < line.length) {
      if (line[i] === '"') {
        let v = '';
        i++;
        while (i < line.length) {
          if (line[i] === '"' && line[i + 1] === '"') { v += '"'; i += 2; }
          else if (line[i] === '"') { i++; break; }
          else v += line[i++];
        }
        cells.push(v);
        i++; // the comma
      } else {
        const j = line.indexOf(',', i);
        cells.push(line.slice(i, j < 0 ? line.length : j));
        i = j < 0 ? line.length : j + 1;
      }
    }
    return cells;
  });
}

describe('bench: llama-bench output', () => {
  let path;
  let model;
  let ours;
  let peerJson;
  before(async () => {
    path = await fixture('llama');
    model = await loadModel(path);
    ours = await bench(model, { tests: TESTS, repetitions: 2, threads: 1 });
    peerJson = await peer(path, 'json');
  });
  after(async () => model?.dispose());

  test('the same rows, fields in the same order, equal values where they must agree', () => {
    const theirs = JSON.parse(peerJson);
    assert.equal(ours.rows.length, theirs.length);
    const mine = JSON.parse(formatBench(ours, 'json'));
    for (const [i, t] of theirs.entries()) {
      const keys = Object.keys(t);
      assert.deepEqual(Object.keys(mine[i]).slice(0, keys.length), keys, 'llama-bench fields first, in its order');
      assert.deepEqual(Object.keys(mine[i]).slice(keys.length).sort(), ['routing', 'experts', 'expert_scale', 'gate_scale', 'ser', 'k_mean', 'kld_mean', 'same_top'].sort());
      for (const k of keys) {
        if (TIMING.has(k)) continue;
        assert.deepEqual(mine[i][k], t[k], `${k} of row ${i}`);
      }
      assert.equal(mine[i].samples_ns.length, 2);
      assert.equal(mine[i].routing, 'default');
      assert.equal(mine[i].k_mean, 2);
    }
    assert.deepEqual([...BENCH_FIELDS.slice(0, Object.keys(theirs[0]).length - 2)], Object.keys(theirs[0]).filter((k) => !k.startsWith('samples_')));
  });

  test("llama-bench's own rows print byte for byte as llama-bench prints them (json, jsonl, csv, sql, md)", async () => {
    const theirs = JSON.parse(peerJson);
    const result = { rows: asOurRows(theirs), settings: { threads: 1, batchSize: 2048, ubatchSize: 512, flashAttention: 'auto', cacheTypeK: 'f16', cacheTypeV: 'f16', threadsGiven: true, kld: false, backends: theirs[0].backends } };
    assert.equal(formatBench(result, 'json', { routingColumns: false }), peerJson);
    // the other formats from a second run: same statistics recomputed from its samples
    for (const format of ['jsonl', 'csv', 'sql', 'md']) {
      const out = await peer(path, format);
      const rows = format === 'jsonl' ? out.trim().split('\n').map((l) => JSON.parse(l)) : JSON.parse(await peer(path, 'json'));
      if (format === 'jsonl') {
        assert.equal(formatBench({ ...result, rows: asOurRows(rows) }, 'jsonl', { routingColumns: false }), out, format);
        continue;
      }
      const mine = formatBench({ ...result, rows: asOurRows(rows) }, format, { routingColumns: false });
      // rows from another run differ in their timings: compare structure, and every non-timing value
      const a = mine.split('\n');
      const b = out.split('\n');
      assert.equal(a.length, b.length, format);
      if (format === 'csv') {
        const [ha, ...ra] = parseCsv(mine);
        const [hb, ...rb] = parseCsv(out);
        assert.deepEqual(ha, hb);
        for (const [i, r] of rb.entries()) hb.forEach((f, j) => TIMING.has(f) || assert.equal(ra[i][j], r[j], `csv ${f}`));
      } else if (format === 'sql') {
        assert.deepEqual(a.filter((l) => !l.startsWith('INSERT')), b.filter((l) => !l.startsWith('INSERT')));
        const values = (l) => l.replace(/^.*VALUES \(/, '').replace(/\);$/, '').split("', '");
        const cols = b.find((l) => l.startsWith('INSERT')).replace(/^INSERT INTO llama_bench \(/, '').replace(/\) VALUES.*$/, '').split(', ');
        a.filter((l) => l.startsWith('INSERT')).forEach((l, i) => {
          const va = values(l);
          const vb = values(b.filter((x) => x.startsWith('INSERT'))[i]);
          cols.forEach((c, j) => TIMING.has(c) || assert.equal(va[j], vb[j], `sql ${c}`));
        });
      } else {
        assert.equal(a[0], b[0], 'md header');
        assert.equal(a[1], b[1], 'md rule');
        for (let i = 2; i < a.length; i++) {
          const cells = (l) => l.split('|').slice(1, -2); // all but t/s
          assert.deepEqual(cells(a[i]), cells(b[i]), `md row ${i}`);
        }
      }
    }
  });

  test('with the routing columns, llama-bench readers still find their columns', () => {
    const csv = parseCsv(formatBench(ours, 'csv'));
    assert.deepEqual(csv[0], [...BENCH_FIELDS]);
    const sql = formatBench(ours, 'sql');
    assert.match(sql, /^CREATE TABLE IF NOT EXISTS llama_bench \(\n {2}build_commit TEXT,/);
    assert.match(sql, /k_mean REAL,\n {2}kld_mean REAL,\n {2}same_top REAL\n\);/);
    assert.match(sql, /'default', '2', '1', '1', '', '2', NULL, NULL\);/);
    const md = formatBench(ours, 'md').split('\n');
    assert.match(md[0], /\| +test \| +t\/s \| routing +\| +k̄ \|$/);
    assert.match(md[2], /\| +pp16 \| .* ± .* \| default +\| +2\.00 \|$/);
    const jsonl = formatBench(ours, 'jsonl').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(jsonl.length, 3);
    assert.equal(jsonl[2].n_prompt, 16);
    assert.equal(jsonl[2].n_gen, 4);
  });

  test('options are validated before any work', async () => {
    await assert.rejects(bench('model.gguf'), { name: 'TypeError', message: /Expected a Model/ });
    await assert.rejects(bench(model, { tests: [{ nPrompt: 0, nGen: 0 }] }), RangeError);
    await assert.rejects(bench(model, { repetition: 2 }), { name: 'TypeError', message: /Did you mean 'repetitions'/ });
    await assert.rejects(bench(model, { routings: [{ experts: 9 }] }), RangeError);
    await assert.rejects(bench(model, { kld: { text: 'x', chunk: 1 } }), TypeError);
  });

  test('several routings, KLD beside speed: the default against itself is 0 and same top 1', async () => {
    const r = await bench(model, {
      routings: [undefined, { experts: 1 }, { experts: 4, minExperts: 1, minWeightRatio: 0.5 }],
      tests: [{ nPrompt: 0, nGen: 4 }],
      repetitions: 1,
      threads: 1,
      kld: { text: sampleText(), contextSize: 64, chunks: 4 },
    });
    assert.deepEqual(r.rows.map((x) => x.routing), ['default', 'experts=1', 'experts=4 ser=1,0.5']);
    // the base is stored as llama-perplexity stores it (log-probabilities quantized to 16 bits), so 0 up to that rounding
    assert.ok(Math.abs(r.rows[0].kld_mean) < 1e-5, `default vs default: KLD ${r.rows[0].kld_mean}`);
    assert.equal(r.rows[0].same_top, 1);
    assert.ok(r.rows[1].kld_mean > 0 && r.rows[1].same_top < 1);
    assert.equal(r.rows[1].k_mean, 1);
    // -ser skips: k̄ is counted, between Kmin and the experts selected
    assert.ok(r.rows[2].k_mean >= 1 && r.rows[2].k_mean < 4, `k̄ ${r.rows[2].k_mean}`);
    assert.equal(r.rows[2].ser, '1,0.5');
    const md = formatBench(r, 'md');
    assert.match(md, /\| +kld \| same top \|/);
  });
});

// -ser's dropped experts skip their matrix multiplications (vendor/patches/0004): the logits must equal
// those of computing them with weight 0 (MOE_EVAL_COMPUTE_DROPPED=1), on every MoE layout.
for (const arch of Object.keys(ARCHS)) {
  test(`skipped experts give the results of weight 0: ${arch}`, async () => {
    const model = await loadModel(await fixture(arch));
    try {
      const tokens = (await model.tokenize(sampleText())).subarray(0, 100);
      const routing = { experts: 4, minExperts: 1, minWeightRatio: 0.4 };
      const logitsWith = async (computeDropped) => {
        if (computeDropped) process.env.MOE_EVAL_COMPUTE_DROPPED = '1';
        try {
          // a batch of 100 tokens in ubatches of 32 and single tokens: both the gemm and gemv paths
          const ctx = await model.createContext({ contextSize: 128, batchSize: 128, ubatchSize: 32, threads: 2, routing });
          try {
            return await ctx.logits(tokens);
          } finally {
            await ctx.dispose();
          }
        } finally {
          delete process.env.MOE_EVAL_COMPUTE_DROPPED;
        }
      };
      const skipped = await logitsWith(false);
      const computed = await logitsWith(true);
      // bit-identical so far on every layout (a zero row times weight 0 is the expert's row times 0);
      // the bound allows only for the sign of a zero changing a last bit
      const { diff, max } = maxAbsDiff(skipped, computed);
      assert.ok(diff <= 1e-6 * max, `${arch}: max |Δlogit| ${diff} (max |logit| ${max})`);
      // and the rule does drop experts here (k̄ < 4), so something was skipped
      const r = await bench(model, { routings: [routing], tests: [{ nPrompt: 32, nGen: 4 }], repetitions: 1, threads: 2, warmup: false });
      assert.ok(r.rows[0].k_mean < 4, `${arch}: k̄ ${r.rows[0].k_mean}`);
    } finally {
      await model.dispose();
    }
  });
}
