/**
 * scan(): the sensitivity of each MoE layer to a routing change. For every MoE layer l and every
 * change c (default: experts n−1 … 1 and n+1 where n+1 ≤ N), the text is evaluated with only layer l
 * changed — the routing `experts: 'l:m'` (or `expertScale: 'l:s'`, `maskExperts: 'l:3,5'`) — and
 * every other layer at the model's own routing, against the KL-divergence base of the model's own
 * routing. The result is a layers × changes matrix of mean KLD (and ΔPPL, same top) that allocate()
 * turns into a per-layer expert budget.
 *
 * One loaded model, one context; the default routing is evaluated once and its log-probabilities
 * written to `<out>.base.kld` (as sweep() does), so each cell costs one evaluation; results append to
 * a JSONL file (src/results-file.ts: header, lock, resume) one line per cell.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { Context, CONTEXT_SIZE_OPTIONS, contextSizes, resolveContextOptions, settingsKey } from './context.js';
import { MoeEvalError, toAbortReason } from './errors.js';
import { type EvaluateResult, INPUT_OPTIONS, type RunOptions, defaultRoutingBase, evaluate, inputTokens } from './evaluate.js';
import { modelFingerprint, stableJson, tokensFingerprint } from './fingerprint.js';
import { readGgufInfo } from './gguf-info.js';
import { Model, loadModel } from './model.js';
import type { ModelInfo } from './model-info.js';
import { RESULTS_FORMAT, type ResultsHeader, ResultsFile } from './results-file.js';
import { type ResolvedRouting, type Routing, resolveRouting } from './routing.js';
import { ROUTING_FLAGS, expertIds, labelPart, numberValue, onLayer, parseLabel } from './routing-grammar.js';
import { checkOptionNames, expected, integer, nonEmptyString, optionalFunction, optionalSignal, optionsObject } from './validate.js';

/**
 * One change applied to a single layer: an experts count, an expert-output scale, a gate scale, or
 * experts masked (removed) in that layer, or several of these together. As text, the routing label
 * grammar: 'experts=1', 'expert-scale=0.8', 'gate-scale=1.5', 'mask-experts=3,5', 'experts=3 expert-scale=1.2'.
 * A bare number is an experts count.
 */
export type ScanChange = number | string | { experts?: number; expertScale?: number; gateScale?: number; maskExperts?: readonly number[] };

export interface ScanOptions extends RunOptions {
  /** The changes (columns). Default: experts n−1 … 1, then n+1 where n+1 ≤ N. */
  changes?: readonly ScanChange[];
  /**
   * KL-divergence base: 'default' (the model's own routing, written once to `<out>.base.kld`; the
   * default) or the path of a base file (e.g. of the unquantized model).
   */
  reference?: 'default' | string;
  onCell?: (cell: ScanCell, done: number, total: number) => void;
  /** Chunks of the evaluation under way (cell 0: the default routing, and its base). */
  onProgress?: (p: { cell: number; cells: number; routing: string; chunksDone: number; chunksTotal: number }) => void;
  signal?: AbortSignal;
}

/** One evaluation of a scan: the default routing (layer null) or one layer changed. */
export interface ScanCell {
  key: string;
  /** The changed layer; null for the default routing. */
  layer: number | null;
  /** The change's label ('experts=1'); 'default' for the default routing. */
  change: string;
  /** The evaluated routing's label (e.g. 'experts=0:1;1-3:2'). */
  routing: string;
  /** Its experts per token, one per layer. */
  experts: number[];
  perplexity: number;
  stderr: number;
  nll: number;
  kldMean: number;
  kldUnc: number;
  sameTop: number;
  /** k̄ over MoE layers, measured from the graph. */
  expertsPerToken: number;
  tokensPerSecond: number;
  threads: number;
  elapsedMs: number;
}

/** Model facts the allocator needs, stored in the results file's header. */
export interface ScanModelFacts {
  architecture: string;
  /** Layer count (dense layers included). */
  layers: number;
  /** The MoE layers' indices. */
  moeLayers: number[];
  /** N per MoE layer. */
  expertCount: number[];
  /** n (the model's own experts per token) per MoE layer. */
  expertsUsed: number[];
  /** Parameters of one routed expert, per MoE layer (a gated FFN: 3 · n_embd · n_ff_exp). */
  expertParams: number[];
  /** All parameters that are not routed experts (attention, embeddings, shared experts, router). */
  otherParams: number;
}

export interface ScanResult {
  out: string;
  /** The KL-divergence base file every cell was evaluated against. */
  reference: string;
  facts: ScanModelFacts;
  /** The changes' labels, in column order. */
  changes: string[];
  /** The default routing's evaluation (its KLD: against the base; ~0 with reference 'default'). */
  base: ScanCell;
  /** One per (MoE layer, change), layer-major. */
  cells: ScanCell[];
  /** matrix[i][j]: mean KLD with MoE layer facts.moeLayers[i] changed by changes[j]. */
  kld: number[][];
  /** ΔPPL in % against the default routing, same shape. */
  deltaPercent: number[][];
  /** Same-top fraction (0…1), same shape. */
  sameTop: number[][];
  contextSize: number;
  chunks: number;
  resumed: number;
  evaluated: number;
}

const SCAN_OPTIONS = [...INPUT_OPTIONS, 'out', ...CONTEXT_SIZE_OPTIONS, 'chunks', 'changes', 'reference', 'onCell', 'onProgress', 'signal'] as const;

/** The options a change may set, in the order its label names them. */
const CHANGE_OPTIONS = ['experts', 'expertScale', 'gateScale', 'maskExperts'] as const;

/** A change in its typed form: the per-option values for the one changed layer. */
export interface ParsedChange {
  experts?: number;
  expertScale?: number;
  gateScale?: number;
  maskExperts?: number[];
  label: string;
}

/** Checks one change's shape (its values are checked against the model by resolveRouting()). */
export function parseChange(c: unknown, name: string): ParsedChange {
  const out: ParsedChange = { label: '' };
  if (typeof c === 'number') {
    out.experts = c;
  } else if (typeof c === 'string') {
    // the routing label grammar (src/routing-grammar.ts), one layer's values
    for (const { option, value } of parseLabel(c, name, CHANGE_OPTIONS, "a change such as 'experts=1', 'expert-scale=0.8' or 'mask-experts=3,5'", 'experts=1')) {
      if (option === 'maskExperts') out.maskExperts = expertIds(value, `${name} mask-experts`);
      else out[option] = numberValue(value, `${name} ${ROUTING_FLAGS[option]}`);
    }
  } else if (c !== null && typeof c === 'object' && !Array.isArray(c)) {
    checkOptionNames(c, CHANGE_OPTIONS, name);
    const o = c as Record<string, unknown>;
    for (const k of CHANGE_OPTIONS) {
      if (o[k] === undefined) continue;
      if (k === 'maskExperts') {
        if (!Array.isArray(o[k])) throw new TypeError(expected('an array of expert ids', `${name}.maskExperts`, o[k]));
        out.maskExperts = (o[k] as unknown[]).map((x, i) => numberValue(x, `${name}.maskExperts[${i}]`));
      } else out[k] = numberValue(o[k], `${name}.${k}`);
    }
    if (CHANGE_OPTIONS.every((k) => out[k] === undefined)) throw new TypeError(expected('a change naming experts, expertScale, gateScale or maskExperts', name, c));
  } else {
    throw new TypeError(expected("an experts count, a change such as 'experts=1' or { experts: 1 }", name, c));
  }
  out.label = CHANGE_OPTIONS.filter((k) => out[k] !== undefined)
    .map((k) => labelPart(k, k === 'maskExperts' ? out.maskExperts!.join(',') : String(out[k])))
    .join(' ');
  return out;
}

/** The default changes: experts n−1 … 1, then n+1 where n+1 ≤ N. */
export function defaultChanges(info: Pick<ModelInfo, 'expertCount' | 'expertsUsed'>): number[] {
  const n = info.expertsUsed;
  const out: number[] = [];
  for (let m = n - 1; m >= 1; m--) out.push(m);
  if (n + 1 <= info.expertCount) out.push(n + 1);
  return out;
}

/** The routing with only `layer` changed by `c`, in the routing grammar. */
export function layerRouting(layer: number, c: ParsedChange): Routing {
  const r: Routing = {};
  if (c.experts !== undefined) r.experts = onLayer(layer, String(c.experts));
  if (c.expertScale !== undefined) r.expertScale = onLayer(layer, String(c.expertScale));
  if (c.gateScale !== undefined) r.gateScale = onLayer(layer, String(c.gateScale));
  if (c.maskExperts !== undefined) r.maskExperts = onLayer(layer, c.maskExperts.join(','));
  return r;
}

/** The number in a GGUF key-value (first element of a per-layer array), or undefined. */
function kvNumber(kv: Record<string, { value?: unknown; length?: number } | undefined>, key: string, layer: number): number | undefined {
  const e = kv[key];
  if (!e) return undefined;
  const v = e.value;
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[layer] === 'number') return v[layer] as number;
  return undefined;
}

/** Parameters per routed expert per MoE layer, from the file's metadata (gated FFN: gate, up, down). */
export async function scanModelFacts(model: Model): Promise<ScanModelFacts> {
  const info = model.info;
  const g = await readGgufInfo(model.path);
  const kv = g.kv as unknown as Record<string, { value?: unknown } | undefined>;
  const a = info.architecture;
  const layers = info.moeLayers.map((l) => l.layer);
  const expertParams = layers.map((il) => {
    // llama.cpp's model saver writes expert_feed_forward_length 0 where the experts use feed_forward_length
    const ff = kvNumber(kv, `${a}.expert_feed_forward_length`, il) || kvNumber(kv, `${a}.feed_forward_length`, il) || 0;
    return 3 * info.embeddingLength * ff;
  });
  const routed = info.moeLayers.reduce((s, l, i) => s + l.expertCount * expertParams[i]!, 0);
  return {
    architecture: a,
    layers: info.layers,
    moeLayers: layers,
    expertCount: info.moeLayers.map((l) => l.expertCount),
    expertsUsed: info.moeLayers.map((l) => l.expertsUsed),
    expertParams,
    otherParams: Math.max(0, info.parameters - routed),
  };
}

function toCell(key: string, layer: number | null, change: string, r: EvaluateResult): ScanCell {
  return {
    key,
    layer,
    change,
    routing: r.routing.label,
    experts: r.routing.experts,
    perplexity: r.perplexity,
    stderr: r.stderr,
    nll: r.nll,
    kldMean: r.kld!.kldMean,
    kldUnc: r.kld!.kldUnc,
    sameTop: r.kld!.sameTop,
    expertsPerToken: r.expertsPerToken.mean,
    tokensPerSecond: r.tokensPerSecond,
    threads: r.threads,
    elapsedMs: r.elapsedMs,
  };
}

const cellKey = (layer: number | null, change: string) => stableJson({ layer, change });

export async function scan(target: Model | string, options: ScanOptions): Promise<ScanResult> {
  const o = optionsObject(options, 'scan options');
  checkOptionNames(o, SCAN_OPTIONS, 'scan()');
  const out = resolve(nonEmptyString(o.out, 'out'));
  const signal = optionalSignal(o.signal, 'signal');
  const onCell = optionalFunction<NonNullable<ScanOptions['onCell']>>(o.onCell, 'onCell');
  const onProgress = optionalFunction<NonNullable<ScanOptions['onProgress']>>(o.onProgress, 'onProgress');
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  if (o.reference !== undefined && (typeof o.reference !== 'string' || o.reference === '')) throw new TypeError(expected("'default' or a base file path", 'reference', o.reference));
  if (o.changes !== undefined && (!Array.isArray(o.changes) || o.changes.length === 0)) throw new TypeError(expected('a non-empty array of changes', 'changes', o.changes));
  const given = o.changes === undefined ? undefined : (o.changes as unknown[]).map((c, i) => parseChange(c, `changes[${i}]`));
  resolveContextOptions(o, 'scan');
  if (signal?.aborted) throw toAbortReason(signal);

  const model = typeof target === 'string' ? await loadModel(target, signal ? { signal } : {}) : target;
  if (!(model instanceof Model)) throw new TypeError(expected('a Model or a model path', 'scan() target', target));
  let results: ResultsFile<ScanCell> | undefined;
  let ctx: Context | undefined;
  try {
    const info = model.info;
    if (info.expertCount === 0) throw new MoeEvalError('ERR_NOT_MOE', `scan() needs a Mixture-of-Experts model; ${model.path} (${info.architecture}) has no experts`);
    const changes = given ?? defaultChanges(info).map((m, i) => parseChange(m, `changes[${i}]`));
    const labels = changes.map((c) => c.label);
    const dup = labels.find((l, i) => labels.indexOf(l) !== i);
    if (dup) throw new RangeError(`changes names ${dup} twice`);
    // every cell resolved (and so checked against the model) before anything is evaluated
    const cells: { layer: number; change: ParsedChange; routing: Routing; resolved: ResolvedRouting }[] = [];
    for (const l of info.moeLayers) {
      for (const [j, c] of changes.entries()) {
        const routing = layerRouting(l.layer, c);
        let resolved: ResolvedRouting;
        try {
          resolved = resolveRouting(routing, info);
        } catch (e) {
          if (e instanceof TypeError || e instanceof RangeError) {
            const E = e instanceof TypeError ? TypeError : RangeError;
            throw new E(`changes[${j}] (${c.label}) in layer ${l.layer}: ${e.message}`);
          }
          throw e;
        }
        cells.push({ layer: l.layer, change: c, routing, resolved });
      }
    }
    const tokens = await inputTokens(model, o, 'scan()');
    ctx = await model.createContext({
      ...contextSizes(o),
      routing: { experts: Math.max(info.expertsUsed, ...cells.flatMap((c) => c.resolved.experts)) },
    });
    const facts = await scanModelFacts(model);
    const basis = {
      model: await modelFingerprint(model.path),
      text: tokensFingerprint(tokens),
      contextSize: ctx.options.contextSize,
      batchSize: ctx.options.batchSize,
      ...settingsKey(ctx.options),
      chunks: chunksOf(chunks, tokens.length, ctx.options.contextSize),
      reference: o.reference === undefined || o.reference === 'default' ? 'default' : resolve(o.reference as string),
      facts,
    };
    results = new ResultsFile<ScanCell>(out, { kind: 'scan', basis });

    let reference: string;
    const total = cells.length + 1;
    const progress = (cell: number, routing: string) => (p: { chunksDone: number; chunksTotal: number }) => onProgress?.({ cell, cells: total, routing, chunksDone: p.chunksDone, chunksTotal: p.chunksTotal });
    let resumed = 0;
    let evaluated = 0;
    if (o.reference === undefined || o.reference === 'default') {
      reference = await defaultRoutingBase(ctx, out, tokens, { chunks, signal, onProgress: progress(0, 'default (writing the KL-divergence base)') });
    } else {
      reference = resolve(o.reference as string);
    }
    const run = (routing: Routing, cell: number, label: string) => evaluate(ctx!, { reference, ...(chunks ? { chunks } : {}), routing, signal, onProgress: progress(cell, label) });

    const baseKey = cellKey(null, 'default');
    let base = results.get(baseKey);
    if (base) resumed++;
    else {
      base = toCell(baseKey, null, 'default', await run({}, 0, 'default'));
      results.append(base);
      evaluated++;
    }
    onCell?.(base, 1, total);

    const done: ScanCell[] = [];
    for (const [i, c] of cells.entries()) {
      const key = cellKey(c.layer, c.change.label);
      let cell = results.get(key);
      if (cell) resumed++;
      else if (c.resolved.isDefault) {
        cell = { ...base, key, layer: c.layer, change: c.change.label }; // the change is no change (e.g. experts=n): the default's numbers
        results.append(cell);
      } else {
        if (signal?.aborted) throw toAbortReason(signal);
        cell = toCell(key, c.layer, c.change.label, await run(c.routing, i + 1, c.resolved.label));
        results.append(cell);
        evaluated++;
      }
      done.push(cell);
      onCell?.(cell, i + 2, total);
    }
    return { out, reference, facts, base, ...scanMatrices(facts, labels, base, done), contextSize: ctx.options.contextSize, chunks: basis.chunks, resumed, evaluated };
  } finally {
    results?.close();
    await ctx?.dispose();
    if (typeof target === 'string') await model.dispose();
  }
}

function chunksOf(chunks: number | undefined, nTokens: number, contextSize: number): number {
  const all = Math.floor(nTokens / contextSize);
  return chunks === undefined ? all : Math.min(all, chunks);
}

function scanMatrices(facts: ScanModelFacts, changes: string[], base: ScanCell, cells: ScanCell[]): Pick<ScanResult, 'changes' | 'cells' | 'kld' | 'deltaPercent' | 'sameTop'> {
  const at = (layer: number, change: string) => cells.find((c) => c.layer === layer && c.change === change);
  const matrix = (f: (c: ScanCell) => number) => facts.moeLayers.map((l) => changes.map((ch) => f(at(l, ch)!)));
  return {
    changes,
    cells,
    kld: matrix((c) => c.kldMean),
    deltaPercent: matrix((c) => (100 * (c.perplexity - base.perplexity)) / base.perplexity),
    sameTop: matrix((c) => c.sameTop),
  };
}

/**
 * A scan result read back from its results file (e.g. for allocate() in another process): every
 * cell in the file, the changes in the order first seen. Cells missing for some layer make it a
 * MoeEvalError (an unfinished scan: run scan() again with the same `out` to finish it).
 */
export function readScan(path: string): ScanResult {
  const file = resolve(nonEmptyString(path, 'path'));
  if (!existsSync(file)) throw new MoeEvalError('ERR_FILE', `Scan results file not found: ${file}`);
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  let header: ResultsHeader;
  let rows: ScanCell[];
  try {
    header = JSON.parse(lines[0] ?? '') as ResultsHeader;
    // a line torn by a crash (the last one) is left out, as a resumed scan would cut it
    rows = lines.slice(1).flatMap((l) => {
      try {
        return [JSON.parse(l) as ScanCell];
      } catch {
        return [];
      }
    });
  } catch {
    throw new MoeEvalError('ERR_FILE', `${file} is not a moe-eval results file`);
  }
  if (header.format !== RESULTS_FORMAT) throw new MoeEvalError('ERR_FILE', `${file} is not a moe-eval results file`);
  if (header.kind !== 'scan') throw new MoeEvalError('ERR_FILE', `${file} holds ${header.kind} results, not a scan`);
  const basis = header.basis as { facts: ScanModelFacts; contextSize: number; chunks: number; reference: string };
  const facts = basis.facts;
  const base = rows.find((r) => r.layer === null);
  if (!base) throw new MoeEvalError('ERR_FILE', `${file} has no evaluation of the default routing yet (an unfinished scan; run it again to finish)`);
  const changes = [...new Set(rows.filter((r) => r.layer !== null).map((r) => r.change))];
  for (const l of facts.moeLayers) {
    for (const c of changes) {
      if (!rows.some((r) => r.layer === l && r.change === c)) throw new MoeEvalError('ERR_FILE', `${file} has no cell for layer ${l}, ${c} (an unfinished scan; run it again to finish)`);
    }
  }
  const cells = rows.filter((r) => r.layer !== null);
  return {
    out: file,
    reference: basis.reference === 'default' ? `${file}.base.kld` : basis.reference,
    facts,
    base,
    ...scanMatrices(facts, changes, base, cells),
    contextSize: basis.contextSize,
    chunks: basis.chunks,
    resumed: rows.length,
    evaluated: 0,
  };
}
