/**
 * compare(): models × quantization levels × routings on the same tokens, against one reference —
 * the first model under its own routing. Quantized files are made on demand by llama.cpp's quantizer
 * into a cache folder (reused when newer than their source). The reference's log-probabilities are
 * written once as a KL-divergence base file in that folder and read back for every other combination.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';

import { toAbortReason } from './errors.js';
import { type EvaluateResult, evaluate, inputTokens } from './evaluate.js';
import { modelFingerprint, tokensFingerprint } from './fingerprint.js';
import { loadModel } from './model.js';
import { quantTypeId, quantizeModel } from './quantize.js';
import type { ReportData, ResultRow } from './report/types.js';
import type { Routing } from './routing.js';
import { checkOptionNames, expected, integer, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface CompareOptions {
  /** GGUF files; the first one, with its default routing, is the reference. */
  models: string[];
  /** Also evaluate the first model quantized to these llama-quantize types (e.g. 'q8_0', 'q4_k_m', 'q2_k'). */
  quantize?: string[];
  /** Folder for quantized files and the reference base. Default: .moe-eval-cache */
  cacheDir?: string;
  /** Routings to evaluate every model under. Default: [{}] (each model's own). */
  routings?: Routing[];
  text?: string;
  file?: string;
  tokens?: Int32Array | readonly number[];
  contextSize?: number;
  batchSize?: number;
  threads?: number;
  chunks?: number;
  onEvent?: (e: CompareEvent) => void;
  signal?: AbortSignal;
}

export type CompareEvent =
  | { kind: 'quantize'; type: string; fraction: number; file: string }
  | { kind: 'evaluate'; model: string; routing: string; done: number; total: number; chunksDone: number; chunksTotal: number }
  | { kind: 'row'; row: ResultRow; done: number; total: number };

export interface CompareResult extends ReportData {
  referenceFile: string;
}

function scaleRuleOf(r: Routing): string {
  if (r.expertScale === undefined) return 'none';
  return typeof r.expertScale === 'string' ? r.expertScale : 'custom';
}

export async function compare(options: CompareOptions): Promise<CompareResult> {
  const o = optionsObject(options, 'compare options');
  checkOptionNames(o, ['models', 'quantize', 'cacheDir', 'routings', 'text', 'file', 'tokens', 'contextSize', 'batchSize', 'threads', 'chunks', 'onEvent', 'signal'], 'compare()');
  if (!Array.isArray(o.models) || o.models.length === 0 || !o.models.every((m) => typeof m === 'string' && m.length > 0)) {
    throw new TypeError(expected('a non-empty array of model paths', 'models', o.models));
  }
  const quantize = (o.quantize as string[] | undefined) ?? [];
  if (!Array.isArray(quantize)) throw new TypeError(expected('an array of quantization types', 'quantize', o.quantize));
  quantize.forEach((t) => quantTypeId(t));
  const routings = (o.routings as Routing[] | undefined) ?? [{}];
  if (!Array.isArray(routings) || routings.length === 0) throw new TypeError(expected('a non-empty array of routings', 'routings', o.routings));
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  const onEvent = optionalFunction<(e: CompareEvent) => void>(o.onEvent, 'onEvent');
  const signal = optionalSignal(o.signal, 'signal');
  const cacheDir = resolve((o.cacheDir as string | undefined) ?? '.moe-eval-cache');
  mkdirSync(cacheDir, { recursive: true });

  const source = resolve(o.models[0] as string);
  const files = (o.models as string[]).map((m) => resolve(m));
  for (const type of quantize) {
    if (signal?.aborted) throw toAbortReason(signal);
    const out = join(cacheDir, `${basename(source, extname(source))}.${type.toLowerCase()}.gguf`);
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(source).mtimeMs) {
      await quantizeModel(source, out, { type, ...(o.threads ? { threads: o.threads as number } : {}), onProgress: (fraction) => onEvent?.({ kind: 'quantize', type, fraction, file: out }) });
    }
    files.push(out);
  }

  const sizes = { contextSize: o.contextSize as number | undefined, batchSize: o.batchSize as number | undefined, threads: o.threads as number | undefined };
  const total = files.length * routings.length;
  const rows: ResultRow[] = [];
  const fingerprints: Record<string, string> = {};
  let referenceFile = '';
  let reference: EvaluateResult | undefined;
  let done = 0;
  for (const [fi, file] of files.entries()) {
    const model = await loadModel(file, { signal });
    try {
      fingerprints[basename(file)] = await modelFingerprint(file);
      if (fi === 0) {
        const tokens = await inputTokens(model, o, 'compare()');
        fingerprints.text = tokensFingerprint(tokens);
        referenceFile = join(cacheDir, `reference-${fingerprints.text}-${basename(file)}.kld`);
        reference = await evaluate(model, { tokens, ...sizes, ...(chunks ? { chunks } : {}), saveReference: referenceFile, signal });
      }
      const info = model.info;
      const ctx = await model.createContext({ ...sizes, contextSize: reference!.contextSize });
      try {
        for (const routing of routings) {
          const isReference = fi === 0 && Object.keys(routing).length === 0;
          const r = isReference
            ? reference!
            : await evaluate(ctx, {
                reference: referenceFile,
                routing,
                signal,
                onProgress: (p) => onEvent?.({ kind: 'evaluate', model: basename(file), routing: JSON.stringify(routing), done, total, chunksDone: p.chunksDone, chunksTotal: p.chunksTotal }),
              });
          const row: ResultRow = {
            model: basename(file),
            fileType: info.fileType,
            sizeBytes: info.sizeBytes,
            bitsPerWeight: info.bitsPerWeight,
            routing: r.routing.label,
            experts: r.routing.experts.length ? Math.max(...r.routing.experts) : 0,
            scaleRule: scaleRuleOf(routing),
            perplexity: r.perplexity,
            stderr: r.stderr,
            deltaPercent: (100 * (r.perplexity - reference!.perplexity)) / reference!.perplexity,
            kldMean: isReference ? 0 : (r.kld?.kldMean ?? null),
            sameTopPercent: isReference ? 100 : r.kld ? 100 * r.kld.sameTop : null,
            tokensPerSecond: r.tokensPerSecond,
          };
          rows.push(row);
          done++;
          onEvent?.({ kind: 'row', row, done, total });
        }
      } finally {
        await ctx.dispose();
      }
    } finally {
      await model.dispose();
    }
  }
  return {
    title: `moe-eval compare: ${basename(source)}`,
    createdAt: new Date().toISOString(),
    settings: {
      reference: `${basename(source)}, default routing`,
      contextSize: reference!.contextSize,
      batchSize: reference!.batchSize,
      chunks: reference!.chunks.length,
      scoredTokens: reference!.scoredTokens,
      quantize: quantize.join(', ') || 'none',
      routings: routings.length,
    },
    fingerprints,
    rows,
    referenceFile,
  };
}
