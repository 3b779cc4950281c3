// The headline workflow on models of real size: a 12-point routing sweep (experts × expert-scale rule)
// with moe-eval — one process, one load, `moe-eval sweep` — against the old way, where every point is
// a new file: `moe-eval export` writes the routing into a copy of the model (scaled ffn_down_exps,
// expert_used_count), then llama.cpp's own llama-perplexity (built from the same vendor tree) loads
// and evaluates it. Same tokens, same evaluation (8 chunks of 512 tokens, -b 2048, -t 2, plain PPL),
// page cache warm and cold (this bench's own files dropped from the cache with posix_fadvise).
//
// The models have Qwen3-30B-A3B's MoE layer geometry (qwen3moe, 128 experts, top-8, hidden 2048,
// expert FF 768, 4 KV heads of 128) in f16, 1, 3 or 8 layers deep (1.5, 4.0, 10.1 GB). createRandomModel
// builds a model in memory in f32 (2.5 GB per layer of this geometry), so one layer is generated,
// converted to f16 with llama.cpp's quantizer, and stacked to the depth by a GGUF writer below (every
// layer a copy of the generated one: the timings do not depend on the values).
//
//   node bench/gb-scale.mjs --size 1|4|10|tiny [--points 12|6|4|2] [--cold] [--cold-points 2] [--dir /work/big-bench]
//   node bench/gb-scale.mjs --size 10 --prepare          generate / stack the model only
//   node bench/gb-scale.mjs --size 10 --reconfigure-only  reconfiguration and routing overhead only
//   node bench/gb-scale.mjs --model-fit                  the cost model from every size's results
// The models (1.5 + 4 + 10 GB) stay in --dir for the next run: delete it when done.
//
// Run each size under the CPU lock: flock /tmp/moe-eval-cpu.lock node bench/gb-scale.mjs --size 4
// Results are appended to <dir>/gb-scale.jsonl; `--model-fit` prints the cost model from that file.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { createRandomModel, evaluate, loadModel, quantizeModel } from '../dist/index.js';
import { cachedShare, demoText, dropCache, line, llamaPerplexity, machine, median, requirePeer, root, runMeasured, time } from './lib.mjs';

const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '1' },
    points: { type: 'string', default: '12' },
    cold: { type: 'boolean', default: false },
    'cold-points': { type: 'string', default: '2' },
    dir: { type: 'string', default: '/work/big-bench' },
    chunks: { type: 'string', default: '8' },
    'model-fit': { type: 'boolean', default: false },
    'no-reconfigure': { type: 'boolean', default: false },
    prepare: { type: 'boolean', default: false },
    'reconfigure-only': { type: 'boolean', default: false },
  },
});

const GB = 1e9;
const cli = join(root, 'dist', 'cli', 'main.js');
const dir = opt.dir;
mkdirSync(dir, { recursive: true });
const resultsFile = join(dir, 'gb-scale.jsonl');

// Qwen3-30B-A3B: 48 layers, hidden 2048, 32 query heads and 4 KV heads of 128, 128 experts of FF 768,
// top-8, vocabulary 151,936. Here: 16 query heads of 128 (createRandomModel sets head size = hidden /
// heads, so the query and output projections are half the real ones: 1.4 % of a layer's parameters),
// and llama.cpp's 32,000-token llama-spm vocabulary (a 151,936-token head would be as large as 5
// layers' active parameters in these shallow models and dominate the evaluation).
const GEOMETRY = { arch: 'qwen3moe', embeddingLength: 2048, heads: 16, headsKv: 4, feedForwardLength: 768, expertCount: 128, expertsUsed: 8 };
const TINY = { arch: 'qwen3moe', embeddingLength: 256, heads: 4, headsKv: 2, feedForwardLength: 128, expertCount: 16, expertsUsed: 4 };
const SIZES = { tiny: { layers: 2, geometry: TINY }, 1: { layers: 1, geometry: GEOMETRY }, 4: { layers: 3, geometry: GEOMETRY }, 10: { layers: 8, geometry: GEOMETRY } };

// ---- a minimal GGUF (v2/v3) reader and a layer-stacking writer -------------------------------------

function readGgufLayout(path) {
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(Math.min(fstatSync(fd).size, 64 << 20));
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  let p = 0;
  const u32 = () => ((p += 4), head.readUInt32LE(p - 4));
  const u64 = () => ((p += 8), Number(head.readBigUInt64LE(p - 8)));
  const str = () => {
    const n = u64();
    p += n;
    return head.toString('utf8', p - n, p);
  };
  const SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skipValue = (type) => {
    if (type === 8) str();
    else if (type === 9) {
      const it = u32();
      const n = u64();
      if (it === 8) for (let i = 0; i < n; i++) str();
      else p += n * SIZE[it];
    } else p += SIZE[type];
  };
  if (head.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path} is not a GGUF file`);
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kvs = [];
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const start = p;
    const key = str();
    const type = u32();
    const valueAt = p;
    skipValue(type);
    if (key === 'general.alignment') alignment = head.readUInt32LE(valueAt);
    kvs.push({ key, type, bytes: head.subarray(start, p), valueAt: valueAt - start });
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nDims = u32();
    const dims = [];
    for (let d = 0; d < nDims; d++) dims.push(u64());
    const type = u32();
    const offset = u64();
    tensors.push({ name, dims, type, offset });
  }
  const dataStart = Math.ceil(p / alignment) * alignment;
  const fileSize = statSync(path).size;
  // each tensor's bytes with the padding after it: up to the next tensor's offset
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  byOffset.forEach((t, i) => (t.padded = (i + 1 < byOffset.length ? byOffset[i + 1].offset : fileSize - dataStart) - t.offset));
  return { version, kvs, tensors, alignment, dataStart };
}

/** Writes `out`: the one-layer model `src` with its layer repeated `layers` times (block_count updated). */
function stackLayers(src, out, layers) {
  const g = readGgufLayout(src);
  const parts = [];
  const strBuf = (s) => {
    const b = Buffer.alloc(8 + Buffer.byteLength(s));
    b.writeBigUInt64LE(BigInt(Buffer.byteLength(s)));
    b.write(s, 8);
    return b;
  };
  const hdr = Buffer.alloc(24);
  hdr.write('GGUF', 0, 'latin1');
  hdr.writeUInt32LE(g.version, 4);
  const outTensors = [];
  for (const t of g.tensors) {
    if (t.name.startsWith('blk.0.')) for (let l = 0; l < layers; l++) outTensors.push({ ...t, name: `blk.${l}.${t.name.slice(6)}`, from: t });
    else if (!t.name.startsWith('blk.')) outTensors.push({ ...t, from: t });
    else throw new Error(`${src} has more than one layer`);
  }
  hdr.writeBigUInt64LE(BigInt(outTensors.length), 8);
  hdr.writeBigUInt64LE(BigInt(g.kvs.length), 16);
  parts.push(hdr);
  for (const kv of g.kvs) {
    const b = Buffer.from(kv.bytes);
    if (kv.key.endsWith('.block_count')) b.writeUInt32LE(layers, kv.valueAt);
    parts.push(b);
  }
  let offset = 0;
  for (const t of outTensors) {
    const b = Buffer.alloc(4 + 8 * t.dims.length + 4 + 8);
    b.writeUInt32LE(t.dims.length, 0);
    t.dims.forEach((d, i) => b.writeBigUInt64LE(BigInt(d), 4 + 8 * i));
    b.writeUInt32LE(t.type, 4 + 8 * t.dims.length);
    b.writeBigUInt64LE(BigInt(offset), 8 + 8 * t.dims.length);
    parts.push(strBuf(t.name), b);
    offset += t.padded;
  }
  let meta = Buffer.concat(parts);
  meta = Buffer.concat([meta, Buffer.alloc(Math.ceil(meta.length / g.alignment) * g.alignment - meta.length)]);
  const tmp = `${out}.tmp`;
  const fo = openSync(tmp, 'w');
  const fi = openSync(src, 'r');
  writeSync(fo, meta);
  const buf = Buffer.alloc(64 << 20);
  for (const t of outTensors) {
    for (let done = 0; done < t.from.padded; ) {
      const n = readSync(fi, buf, 0, Math.min(buf.length, t.from.padded - done), g.dataStart + t.from.offset + done);
      if (n <= 0) throw new Error(`short read in ${src}`);
      writeSync(fo, buf, 0, n);
      done += n;
    }
  }
  closeSync(fi);
  closeSync(fo);
  renameSync(tmp, out); // a half-written file never has the final name
}

async function ensureModel(size) {
  const { layers, geometry } = SIZES[size];
  const tag = size === 'tiny' ? 'tiny' : 'a3b';
  const one = join(dir, `qwen3moe-${tag}-1l-f16.gguf`);
  if (!existsSync(one)) {
    const f32 = join(dir, `qwen3moe-${tag}-1l-f32.gguf`);
    console.log(`generating ${f32} (one layer, f32) …`);
    await createRandomModel(f32, { ...geometry, layers: 1, seed: 7 });
    await quantizeModel(f32, one, { type: 'f16' });
    rmSync(f32);
  }
  if (layers === 1) return one;
  const path = join(dir, `qwen3moe-${tag}-${layers}l-f16.gguf`);
  if (!existsSync(path)) {
    console.log(`stacking ${path} (${layers} layers) …`);
    stackLayers(one, path, layers);
  }
  return path;
}

/**
 * Parameters a token passes through, from the file's tensors: per layer the dense ones (attention,
 * norms, router) and one expert's (ffn_{gate,up,down}_exps / expert count), and the output head
 * (token_embd is a lookup, not computed). Active parameters at m experts = layers × (dense + m × expert) + head.
 */
function activeGeometry(path) {
  const g = readGgufLayout(path);
  const n = (t) => t.dims.reduce((a, b) => a * b, 1);
  let dense = 0;
  let expert = 0;
  let head = 0;
  let layers = 0;
  for (const t of g.tensors) {
    const m = /^blk\.(\d+)\.(.*)$/.exec(t.name);
    if (!m) {
      if (t.name.startsWith('output.weight')) head += n(t);
      continue;
    }
    layers = Math.max(layers, Number(m[1]) + 1);
    if (m[1] !== '0') continue;
    if (/_exps\./.test(m[2])) expert += n(t) / t.dims[t.dims.length - 1];
    else dense += n(t);
  }
  return { layers, dense, expert, head };
}
const activeParameters = (geo, m) => geo.layers * (geo.dense + m * geo.expert) + geo.head;

// ---- the two workflows ------------------------------------------------------------------------------

const EXPERTS = [2, 4, 6, 10];
const RULES = ['none', 'seed-uniform', 'uniform'];
// 12 points, none of them the model's own routing (at 8 experts every rule is the default routing)
const GRID = EXPERTS.flatMap((e) => RULES.map((s) => ({ experts: e, expertScale: s })));

// fewer points (for the 10 GB model within the CPU lock's time): a product of expert counts and rules, so
// that moe-eval still runs them as one sweep, with a mean expert count near the full grid's 5.5
const SUBSETS = { 2: [[4, 6], ['uniform']], 4: [[4, 6], ['none', 'uniform']], 6: [[2, 4, 10], ['none', 'uniform']] };
function pickPoints(n) {
  if (n >= GRID.length) return GRID;
  const [experts, rules] = SUBSETS[n] ?? [];
  if (!experts) throw new RangeError(`--points takes 2, 4, 6 or 12, not ${n}`);
  return experts.flatMap((e) => rules.map((r) => ({ experts: e, expertScale: r })));
}

const evalFlags = (chunks) => ['-c', '512', '-b', '2048', '-t', '2', '--chunks', String(chunks)];

async function moeEvalSweep(model, points, chunks, tag) {
  const out = join(dir, `sweep-${tag}-${Date.now()}.jsonl`);
  // one process: load once, then every point on one context (the grid flags give exactly these points
  // when the grid is the full one; a subset is given as one sweep per expert count would not be one
  // load, so the subset is written as the product it is)
  const experts = [...new Set(points.map((p) => p.experts))];
  const rules = [...new Set(points.map((p) => p.expertScale))];
  if (experts.length * rules.length !== points.length) throw new Error('a subset of points must be a product of expert counts and rules');
  const args = [cli, 'sweep', '-m', model, '-f', demoText, ...evalFlags(chunks), '-o', out, '--json', '--experts', ...experts.map(String), '--expert-scale', ...rules];
  const r = await runMeasured(process.execPath, args);
  const result = JSON.parse(r.stdout);
  rmSync(out, { force: true });
  rmSync(`${out}.lock`, { force: true });
  return { wallMs: r.ms, peak: r.peak, rows: result.rows };
}

async function oldWayPoint(model, point, chunks, cold) {
  const variant = join(dir, `variant-e${point.experts}-${point.expertScale}.gguf`);
  if (cold) dropCache(model);
  const ex = await runMeasured(process.execPath, [cli, 'export', '-m', model, '-o', variant, '--experts', String(point.experts), '--expert-scale', point.expertScale]);
  let syncMs = 0;
  if (cold) {
    // the variant goes to disk before it is read back (a 60–200 GB variant does not stay in the cache)
    const t = performance.now();
    dropCache(variant);
    syncMs = performance.now() - t;
  }
  const bytes = statSync(variant).size;
  const lp = await runMeasured(llamaPerplexity, ['-m', variant, '-f', demoText, ...evalFlags(chunks)]);
  const out = lp.stdout + lp.stderr;
  const ppl = Number(/Final estimate: PPL = ([0-9.]+)/.exec(out)?.[1] ?? NaN);
  // llama-perplexity's log lines carry the time since it started (min.s.ms.us): until it tokenizes the
  // text it has loaded the model and created its context
  const at = /(\d+)\.(\d+)\.(\d+)\.(\d+) I perplexity: tokenizing the input/.exec(out);
  const loadMs = at ? Number(at[1]) * 60e3 + Number(at[2]) * 1e3 + Number(at[3]) + Number(at[4]) / 1e3 : NaN;
  rmSync(variant, { force: true });
  return { rewriteMs: ex.ms + syncMs, syncMs, rewritePeak: ex.peak, lpMs: lp.ms, loadMs, lpPeak: lp.peak, ppl, bytes };
}

async function oldWay(model, points, chunks, cold) {
  const rows = [];
  const t = performance.now();
  for (const p of points) {
    if (!cold) readWhole(model); // warm: the source is in the cache before each point
    rows.push({ ...p, ...(await oldWayPoint(model, p, chunks, cold)) });
  }
  return { wallMs: performance.now() - t, rows };
}

function readWhole(path) {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(64 << 20);
  let at = 0;
  for (let n; (n = readSync(fd, buf, 0, buf.length, at)) > 0; ) at += n;
  closeSync(fd);
}

function coldReadCheck(path) {
  dropCache(path);
  const before = cachedShare(path);
  const t0 = performance.now();
  readWhole(path);
  const cold = performance.now() - t0;
  const t1 = performance.now();
  readWhole(path);
  const warm = performance.now() - t1;
  return { before, cold, warm, after: cachedShare(path) };
}

// ---- reconfiguration latency and routing overhead at this size (in this process) --------------------

async function reconfigure(model, rounds = 3) {
  const m = await loadModel(model);
  const tokens = (await m.tokenize(readFileSync(demoText, 'utf8'))).subarray(0, 1024);
  const ctx = await m.createContext({ contextSize: 512, batchSize: 512, threads: 2 });
  await evaluate(ctx, { tokens, chunks: 1 });
  const runtime = [];
  const chunk = [];
  for (let i = 0; i < rounds; i++) {
    await time(() => evaluate(ctx, { tokens, chunks: 1, routing: { expertScale: 1 + 0.1 * (i + 1) } }), runtime);
    await time(() => evaluate(ctx, { tokens, chunks: 1, routing: { expertScale: 1 + 0.1 * (i + 1) } }), chunk);
  }
  // routing overhead: scales (same expert count) against the default routing, paired
  const def = [];
  const scaled = [];
  for (let i = 0; i < rounds; i++) {
    await time(() => evaluate(ctx, { tokens, chunks: 1, routing: {} }), def);
    await time(() => evaluate(ctx, { tokens, chunks: 1, routing: { expertScale: 1.1, gateScale: 1.2 } }), scaled);
    await time(() => evaluate(ctx, { tokens, chunks: 1, routing: { expertScale: 1.1, gateScale: 1.2 } }), scaled);
    await time(() => evaluate(ctx, { tokens, chunks: 1, routing: {} }), def);
  }
  await ctx.dispose();
  // one context as the sweep and llama-perplexity make it (-c 512 -b 2048: 4 sequences per batch)
  const big = await m.createContext({ contextSize: 512, batchSize: 2048, threads: 2 });
  const memory = await big.memory();
  await big.dispose();
  const vocab = m.info.vocabSize;
  await m.dispose();
  return {
    chunkMs: median(chunk),
    reconfigureMs: median(runtime.map((x, i) => x - chunk[i])),
    overheadPct: 100 * (median(scaled.map((x, i) => x / def[i])) - 1),
    // KV cache + compute buffers (llama.cpp's accounting) + the logits buffer (n_batch × n_vocab floats)
    contextBytes: memory.context + memory.compute + 2048 * vocab * 4,
    kvBytes: memory.context,
    computeBytes: memory.compute,
  };
}

// ---- one size --------------------------------------------------------------------------------------

const s = (ms) => `${(ms / 1000).toFixed(1)} s`;
const gb = (b) => `${(b / GB).toFixed(2)} GB`;

async function runSize(size) {
  requirePeer();
  const chunks = Number(opt.chunks);
  const model = await ensureModel(size);
  const fileBytes = statSync(model).size;
  const points = pickPoints(Number(opt.points));
  const info = JSON.parse((await runMeasured(process.execPath, [cli, 'info', '-m', model, '--json'])).stdout);
  console.log(`\nmoe-eval at scale — ${machine()} — ${new Date().toISOString()}`);
  console.log(`model: ${model} (${gb(fileBytes)}, ${SIZES[size].layers} layers, ${(info.parameters / 1e9).toFixed(2)} B parameters, f16), ${points.length} points, ${chunks} chunks × 512 tokens, -b 2048 -t 2, plain PPL`);

  const c = coldReadCheck(model);
  line('cache drop check (posix_fadvise DONTNEED via dd iflag=nocache)', `cached ${(100 * c.before).toFixed(0)} % after the drop; cold read ${s(c.cold)} (${(fileBytes / GB / (c.cold / 1000)).toFixed(2)} GB/s), warm read ${s(c.warm)} (${(fileBytes / GB / (c.warm / 1000)).toFixed(2)} GB/s); cached ${(100 * c.after).toFixed(0)} % after`);

  // warm: the file is in the page cache before each side starts
  readWhole(model);
  const ours = await moeEvalSweep(model, points, chunks, 'warm');
  const theirs = await oldWay(model, points, chunks, false);
  const result = { size, model, fileBytes, layers: SIZES[size].layers, parameters: info.parameters, chunks, points: points.length, date: new Date().toISOString(), warm: { ours: { wallMs: ours.wallMs, peak: ours.peak, rows: ours.rows.map((r) => ({ routing: r.routing, experts: r.experts[0], elapsedMs: r.elapsedMs, perplexity: r.perplexity, expertsPerToken: r.expertsPerToken })) }, theirs }, geometry: activeGeometry(model) };
  report('warm', ours, theirs, fileBytes, points);

  if (opt.cold) {
    // cold: every file of this bench out of the page cache before each process reads it
    const n = Math.min(Number(opt['cold-points']), points.length);
    const cp = points.slice(0, n);
    dropCache(model);
    const oursCold = await moeEvalSweep(model, cp, chunks, 'cold');
    const theirsCold = await oldWay(model, cp, chunks, true);
    result.cold = { points: n, ours: { wallMs: oursCold.wallMs, peak: oursCold.peak, rows: oursCold.rows.map((r) => ({ routing: r.routing, experts: r.experts[0], elapsedMs: r.elapsedMs })) }, theirs: theirsCold };
    report(`cold (${n} points)`, oursCold, theirsCold, fileBytes, cp);
  }

  appendFileSync(resultsFile, JSON.stringify(result) + '\n');
  if (!opt['no-reconfigure']) {
    const rc = await reconfigure(model);
    result.reconfigure = rc;
    line('reconfiguration: new routing → first 512-token chunk, minus the same chunk again', `${rc.reconfigureMs.toFixed(1)} ms (chunk ${s(rc.chunkMs)}, median of 3)`, { ok: rc.reconfigureMs <= 50, text: '≤ 50 ms, flat in model size' });
    line('routing overhead (expertScale 1.1, gateScale 1.2 vs default, 1 chunk, 6 pairs)', `${rc.overheadPct >= 0 ? '+' : ''}${rc.overheadPct.toFixed(2)} %`);
    const limit = 1.1 * (fileBytes + rc.contextBytes);
    const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    line('peak RSS of the whole sweep against file + one context', `${gb(ours.peak)} vs ${gb(fileBytes + rc.contextBytes)} (context: KV ${mib(rc.kvBytes)} + compute ${mib(rc.computeBytes)} + logits ${mib(rc.contextBytes - rc.kvBytes - rc.computeBytes)}): ${(ours.peak / (fileBytes + rc.contextBytes)).toFixed(2)}`, { ok: ours.peak <= limit, text: '≤ 1.10' });
    const lpPeak = Math.max(...theirs.rows.map((r) => r.lpPeak));
    line('peak RSS of the whole sweep against llama-perplexity for one point', `${gb(ours.peak)} vs ${gb(lpPeak)}: ${(ours.peak / lpPeak).toFixed(2)}`, { ok: ours.peak <= 1.1 * lpPeak, text: '≤ 1.10' });
  }
  appendFileSync(resultsFile, JSON.stringify({ size, reconfigure: result.reconfigure, date: result.date }) + '\n');
  console.log(`(kept ${model} for the next run; delete ${dir} when done)`);
}

// ---- the cost model, fitted from every size's results ----------------------------------------------

/** Least squares y = a·x + c. */
function linear(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const a = sxy / sxx;
  return { a, c: my - a * mx };
}

function fitCostModel() {
  const runs = new Map();
  for (const l of readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(l);
    if (r.size === 'tiny') continue;
    if (r.warm) runs.set(r.size, { ...r, reconfigure: runs.get(r.size)?.reconfigure ?? r.reconfigure });
    else if (r.reconfigure && runs.has(r.size)) runs.get(r.size).reconfigure = r.reconfigure;
  }
  const all = [...runs.values()].sort((a, b) => a.fileBytes - b.fileBytes);
  console.log(`cost model from ${all.length} sizes (${all.map((r) => `${(r.fileBytes / GB).toFixed(2)} GB`).join(', ')}); medians per point, warm unless said`);
  const perSize = all.map((r) => {
    const geo = r.geometry ?? activeGeometry(r.model);
    const t = r.warm.theirs.rows;
    const scaled = t.filter((x) => x.expertScale !== 'none');
    return {
      gb: r.fileBytes / GB,
      geo,
      tokens: r.chunks * 512,
      rewrite: median(t.map((x) => x.rewriteMs)) / 1000,
      rewriteScaled: median(scaled.map((x) => x.rewriteMs)) / 1000,
      load: median(t.map((x) => x.loadMs)) / 1000,
      coldRewrite: r.cold ? median(r.cold.theirs.rows.map((x) => x.rewriteMs)) / 1000 : NaN,
      coldLoad: r.cold ? median(r.cold.theirs.rows.map((x) => x.loadMs)) / 1000 : NaN,
      ours: r.warm.ours.rows.map((x) => ({ ms: x.elapsedMs, experts: x.experts ?? Number(/experts=(\d+)/.exec(x.routing)[1]) })),
      oursStart: (r.warm.ours.wallMs - r.warm.ours.rows.reduce((a, x) => a + x.elapsedMs, 0)) / 1000,
      oursColdStart: r.cold ? (r.cold.ours.wallMs - r.cold.ours.rows.reduce((a, x) => a + x.elapsedMs, 0)) / 1000 : NaN,
      r,
    };
  });
  const rw = linear(perSize.map((x) => x.gb), perSize.map((x) => x.rewrite));
  const ld = linear(perSize.map((x) => x.gb), perSize.map((x) => x.load));
  const st = linear(perSize.map((x) => x.gb), perSize.map((x) => x.oursStart));
  const cold = perSize.filter((x) => Number.isFinite(x.coldRewrite));
  const crw = cold.length >= 2 ? linear(cold.map((x) => x.gb), cold.map((x) => x.coldRewrite)) : null;
  const cld = cold.length >= 2 ? linear(cold.map((x) => x.gb), cold.map((x) => x.coldLoad)) : null;
  const cst = cold.length >= 2 ? linear(cold.map((x) => x.gb), cold.map((x) => x.oursColdStart)) : null;
  // evaluation: seconds = b × tokens × active parameters of the layers + c per point (the output head
  // and everything else a point costs whatever its routing), over every evaluated point of every size
  const layerActive = (geo, m) => activeParameters(geo, m) - geo.head;
  const xs = [];
  const ys = [];
  for (const x of perSize) for (const p of x.ours) {
    xs.push(x.tokens * layerActive(x.geo, p.experts));
    ys.push(p.ms / 1000);
  }
  const ev = linear(xs, ys);
  for (const x of perSize) {
    console.log(`  ${x.gb.toFixed(2)} GB: rewrite ${x.rewrite.toFixed(2)} s (scaled points ${x.rewriteScaled.toFixed(2)} s), load ${x.load.toFixed(2)} s, moe-eval start + load ${x.oursStart.toFixed(2)} s; cold: rewrite ${x.coldRewrite.toFixed(2)} s, load ${x.coldLoad.toFixed(2)} s, moe-eval start + load ${x.oursColdStart.toFixed(2)} s`);
  }
  const f = (v, d = 2) => v.toFixed(d);
  line('old way: rewrite (moe-eval export), warm', `${f(rw.a)} s/GB + ${f(rw.c)} s`);
  line('old way: llama-perplexity load, warm', `${f(ld.a)} s/GB + ${f(ld.c)} s`);
  if (crw) line('old way: rewrite, cold (source read from disk, variant written to disk)', `${f(crw.a)} s/GB + ${f(crw.c)} s`);
  if (cld) line('old way: llama-perplexity load, cold', `${f(cld.a)} s/GB + ${f(cld.c)} s`);
  line('moe-eval: process start + the one load, warm', `${f(st.a)} s/GB + ${f(st.c)} s`);
  if (cst) line('moe-eval: process start + the one load, cold', `${f(cst.a)} s/GB + ${f(cst.c)} s`);
  line('evaluation (both sides), f16, -t 2', `${f(ev.a * 1e12, 3)} s per 10¹² token × active parameter in the layers + ${f(ev.c)} s per point (this model's head and fixed costs) — ${(1 / ev.a / 1e9).toFixed(1)} G token·params/s`);
  const predict = (gbs, active, tokens, points, coldCache, faster = 1) => {
    const perPointOld = (coldCache && crw ? crw.a * gbs + crw.c : rw.a * gbs + rw.c) + (coldCache && cld ? cld.a * gbs + cld.c : ld.a * gbs + ld.c);
    // c was measured with this geometry's 65.5 M-parameter head; a user's head is in `active` at rate b
    const e = (ev.a * tokens * active) / faster;
    const startOurs = coldCache && cst ? cst.a * gbs + cst.c : st.a * gbs + st.c;
    return { old: points * (perPointOld + e), ours: startOurs + points * e, ratio: (points * (perPointOld + e)) / (startOurs + points * e) };
  };
  // the fitted model against the measured sweeps
  for (const x of perSize) {
    const meanActive = x.ours.reduce((a, p) => a + layerActive(x.geo, p.experts), 0) / x.ours.length + Math.max(0, ev.c) / ev.a / x.tokens;
    const p = predict(x.gb, meanActive, x.tokens, x.ours.length, false);
    const measured = x.r.warm.theirs.wallMs / x.r.warm.ours.wallMs;
    line(`  check at ${x.gb.toFixed(2)} GB (${x.ours.length} points)`, `predicted ${f(p.ratio)}×, measured ${f(measured)}×`);
  }
  // users' models, active parameters at the grid's mean expert count (5.5): Qwen3-30B-A3B in f16 (61 GB;
  // 48 layers, 32 query heads of 128, 151,936-token head), a 200 GB model of the same bytes per active
  // parameter, and Qwen3-235B-A22B in q6_K (193 GB; 94 layers, hidden 4096, 64 query heads of 128,
  // expert FF 1536) — its evaluation rate taken as f16's, which is an approximation
  const a3b = activeParameters({ layers: 48, dense: 2048 * 4096 * 2 + 2048 * 512 * 2 + 2048 * 128, expert: 3 * 2048 * 768, head: 151936 * 2048 }, 5.5);
  const a22b = activeParameters({ layers: 94, dense: 4096 * 8192 * 2 + 4096 * 512 * 2 + 4096 * 128, expert: 3 * 4096 * 1536, head: 151936 * 4096 }, 5.5);
  const predictions = [];
  for (const [name, gbs, active] of [
    ['Qwen3-30B-A3B f16, 61 GB', 61.1, a3b],
    ['200 GB, A3B-f16 bytes per active param', 200, (a3b * 200) / 61.1],
    ['Qwen3-235B-A22B q6_K, 193 GB', 193, a22b],
  ]) {
    for (const coldCache of [false, true]) {
      const p = predict(gbs, active, 4096, 12, coldCache);
      const p10 = predict(gbs, active, 4096, 12, coldCache, 10);
      const p100 = predict(gbs, active, 4096, 12, coldCache, 100);
      predictions.push({ name, gbs, active, coldCache, ...p, ratio10: p10.ratio, ratio100: p100.ratio });
      line(
        `predicted: ${name}, ${(active / 1e9).toFixed(1)} B active, ${coldCache ? 'cold' : 'warm'}`,
        `12 points × 8×512 tokens: old way ${(p.old / 60).toFixed(0)} min, moe-eval ${(p.ours / 60).toFixed(0)} min: ${f(p.ratio)}×; evaluation 10× faster: ${f(p10.ratio)}×, 100×: ${f(p100.ratio)}×`,
      );
    }
  }
  return { rw, ld, crw, cld, st, cst, ev, predictions };
}

function report(label, ours, theirs, fileBytes, points) {
  const rows = theirs.rows;
  const evalMs = ours.rows.map((r) => r.elapsedMs);
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  line(`[${label}] old way per point: rewrite (moe-eval export)`, `median ${s(median(rows.map((r) => r.rewriteMs)))}${rows[0].syncMs ? ` (of which writing to disk ${s(median(rows.map((r) => r.syncMs)))})` : ''}, peak RSS ${gb(Math.max(...rows.map((r) => r.rewritePeak)))}`);
  line(`[${label}] old way per point: llama-perplexity load + evaluate`, `median ${s(median(rows.map((r) => r.lpMs)))} (load ${s(median(rows.map((r) => r.loadMs)))}), peak RSS ${gb(Math.max(...rows.map((r) => r.lpPeak)))}`);
  line(`[${label}] old way per point: disk space of each variant`, gb(median(rows.map((r) => r.bytes))));
  line(`[${label}] moe-eval per point: evaluation`, `median ${s(median(evalMs))}; whole sweep ${s(ours.wallMs)} of which load + start ${s(ours.wallMs - sum(evalMs))}, peak RSS ${gb(ours.peak)}`);
  const noRewrite = theirs.wallMs - sum(rows.filter((r) => r.expertScale === 'none').map((r) => r.rewriteMs));
  line(`[${label}] whole sweep, ${points.length} points: old way / moe-eval`, `${s(theirs.wallMs)} / ${s(ours.wallMs)} = ${(theirs.wallMs / ours.wallMs).toFixed(2)}× (without rewriting the 'none' points, --override-kv instead: ${(noRewrite / ours.wallMs).toFixed(2)}×)`, fileBytes >= 4e9 ? { ok: theirs.wallMs / ours.wallMs >= 2.5, text: '≥ 2.5× at ≥ 4 GB' } : undefined);
  const byRouting = new Map(ours.rows.map((r) => [r.routing, r.perplexity]));
  let worst = 0;
  for (const r of rows) {
    const o = byRouting.get(`experts=${r.experts}${r.expertScale === 'none' ? '' : ` expert-scale=${r.expertScale}`}`);
    if (o !== undefined) worst = Math.max(worst, Math.abs(o - r.ppl) / r.ppl);
  }
  line(`[${label}] same PPL, moe-eval against llama-perplexity on the rewritten file`, `largest relative difference ${worst.toExponential(2)} over ${rows.length} points`);
}

if (opt['model-fit']) {
  fitCostModel();
} else if (opt['reconfigure-only']) {
  const model = await ensureModel(opt.size);
  const rc = await reconfigure(model);
  console.log(`${model}: reconfiguration ${rc.reconfigureMs.toFixed(1)} ms (chunk ${s(rc.chunkMs)}), routing overhead ${rc.overheadPct.toFixed(2)} %, context ${(rc.contextBytes / 2 ** 20).toFixed(0)} MiB`);
  appendFileSync(resultsFile, JSON.stringify({ size: opt.size, reconfigure: rc, date: new Date().toISOString() }) + '\n');
} else if (opt.prepare) {
  const path = await ensureModel(opt.size);
  console.log(path, activeGeometry(path));
} else {
  await runSize(opt.size);
}
