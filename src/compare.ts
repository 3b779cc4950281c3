/**
 * compare(): models × quantization levels × routings on the same tokens, against one reference —
 * the first model under its own routing. Quantized files are made on demand by llama.cpp's quantizer
 * into a cache folder (reused when newer than their source). The reference's log-probabilities are
 * written once as a KL-divergence base file in that folder and read back for every other combination.
 */
import { mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

import { MoeEvalError, toAbortReason } from './errors.js';
import { type EvaluateResult, INPUT_OPTIONS, type TextAndSizes, evaluate, inputTokens } from './evaluate.js';
import { kldTopKOption } from './reference.js';
import { modelFingerprint, tokensFingerprint } from './fingerprint.js';
import { type LoadModelOptions, loadModel } from './model.js';
import { CONTEXT_SIZE_OPTIONS, contextSizes, resolveContextOptions } from './context.js';
import { readGgufInfo } from './gguf-info.js';
import { type ImatrixSource, type QuantizeRecipe, checkRecipe, isPlainRecipe, makeRecipe } from './recipe.js';
import type { ReportData, ResultRow } from './report/types.js';
import { type Routing, resolveRouting, validateRoutingShape } from './routing.js';
import { checkOptionNames, expected, integer, optionalFunction, optionalSignal, optionsObject } from './validate.js';

export interface CompareOptions extends TextAndSizes {
  /** GGUF files; the first one, with its default routing, is the reference. */
  models: string[];
  /** How every model is loaded (gpuLayers, kvOverrides, rpcServers, useMmap). */
  loadOptions?: Omit<LoadModelOptions, 'signal' | 'onProgress'>;
  /**
   * Also evaluate the first model quantized with these recipes, one row each: llama-quantize types
   * ('q8_0', 'q4_k_m'), with an importance matrix and tensor overrides ('iq2_xxs+imatrix',
   * 'iq2_xxs+imatrix, ffn_down_exps=q4_k, attn=q6_k'), or QuantizeRecipe objects (see recipe.ts).
   */
  quantize?: (string | QuantizeRecipe)[];
  /** The calibration text `+imatrix` recipes collect their importance matrix on (imatrix() options). */
  calibration?: ImatrixSource;
  /**
   * Where the quantized files and the reference's KL-divergence base are written (created if missing;
   * reused by later runs). Default: `.moe-eval-cache` in the current folder. The result names it.
   */
  cacheDir?: string;
  /** Write the reference's base in the compact format, the top kldTopK log-probabilities per token (docs/kld-compact.md). */
  kldTopK?: number;
  /** Routings to evaluate every model under. Default: [{}] (each model's own). */
  routings?: Routing[];
  onEvent?: (e: CompareEvent) => void;
  signal?: AbortSignal;
}

export type CompareEvent =
  | { kind: 'cache'; dir: string }
  | { kind: 'quantize'; type: string; fraction: number; file: string }
  | { kind: 'evaluate'; model: string; routing: string; done: number; total: number; chunksDone: number; chunksTotal: number }
  | { kind: 'row'; row: ResultRow; done: number; total: number };

export interface CompareResult extends ReportData {
  referenceFile: string;
  /** The folder quantized files and the reference base were written to. */
  cacheDir: string;
}

function scaleRuleOf(r: Routing): string {
  if (r.expertScale === undefined) return 'none';
  return typeof r.expertScale === 'string' ? r.expertScale : 'custom';
}

const COMPARE_OPTIONS = ['models', 'loadOptions', 'quantize', 'calibration', 'cacheDir', 'kldTopK', 'routings', ...INPUT_OPTIONS, ...CONTEXT_SIZE_OPTIONS, 'chunks', 'onEvent', 'signal'] as const;

export async function compare(options: CompareOptions): Promise<CompareResult> {
  const o = optionsObject(options, 'compare options');
  checkOptionNames(o, COMPARE_OPTIONS, 'compare()');
  if (!Array.isArray(o.models) || o.models.length === 0 || !o.models.every((m) => typeof m === 'string' && m.length > 0)) {
    throw new TypeError(expected('a non-empty array of model paths', 'models', o.models));
  }
  const loadOptions = optionsObject(o.loadOptions, 'loadOptions') as Omit<LoadModelOptions, 'signal' | 'onProgress'>;
  if (o.quantize !== undefined && !Array.isArray(o.quantize)) throw new TypeError(expected('an array of quantization types or recipes', 'quantize', o.quantize));
  const recipes = ((o.quantize as (string | QuantizeRecipe)[] | undefined) ?? []).map((r, i) => checkRecipe(r, `quantize[${i}]`));
  const quantize = recipes.map((r) => r.label!);
  if (recipes.some((r) => r.imatrix === true) && o.calibration === undefined) {
    throw new TypeError("Expected calibration (the text '+imatrix' recipes collect their importance matrix on) for compare() but received none");
  }
  const calibration = o.calibration === undefined ? undefined : (optionsObject(o.calibration, 'calibration') as ImatrixSource);
  const routings = (o.routings as Routing[] | undefined) ?? [{}];
  if (!Array.isArray(routings) || routings.length === 0) throw new TypeError(expected('a non-empty array of routings', 'routings', o.routings));
  routings.forEach((r, i) => validateRoutingShape(r, `routings[${i}]`));
  const chunks = o.chunks === undefined ? undefined : integer(o.chunks, 'chunks', 1, 2 ** 31 - 1);
  const kldTopK = kldTopKOption(o.kldTopK);
  const onEvent = optionalFunction<(e: CompareEvent) => void>(o.onEvent, 'onEvent');
  const signal = optionalSignal(o.signal, 'signal');
  const sizes = resolveContextOptions(o, 'compare');
  const source = resolve(o.models[0] as string);
  const files = (o.models as string[]).map((m) => resolve(m));

  // every model must score the same tokens against the first one's: check before any work
  const heads = await Promise.all(files.map((f) => readGgufInfo(f)));
  for (const h of heads.slice(1)) {
    if (h.vocabSize !== heads[0]!.vocabSize) {
      throw new MoeEvalError(
        'ERR_VOCAB_MISMATCH',
        `${basename(h.path)} has a vocabulary of ${h.vocabSize} tokens and ${basename(heads[0]!.path)} one of ${heads[0]!.vocabSize}: KL-divergence needs models with the same vocabulary`,
      );
    }
  }
  const cacheDir = resolve((o.cacheDir as string | undefined) ?? '.moe-eval-cache');
  mkdirSync(cacheDir, { recursive: true });
  onEvent?.({ kind: 'cache', dir: cacheDir });

  const labels = new Map<string, string>();
  for (const recipe of recipes) {
    if (signal?.aborted) throw toAbortReason(signal);
    const type = recipe.label!;
    const out = await makeRecipe(recipe, {
      source, cacheDir, ...(calibration ? { calibration } : {}), ...(o.threads ? { threads: o.threads as number } : {}), ...(signal ? { signal } : {}),
      onQuantize: (fraction, file) => onEvent?.({ kind: 'quantize', type, fraction, file }),
    });
    if (!isPlainRecipe(recipe)) labels.set(out, type);
    files.push(out);
  }

  const contextOptions = contextSizes(sizes);
  const total = files.length * routings.length;
  const rows: ResultRow[] = [];
  const fingerprints: Record<string, string> = {};
  let referenceFile = '';
  let reference: EvaluateResult | undefined;
  let done = 0;
  for (const [fi, file] of files.entries()) {
    const model = await loadModel(file, { ...loadOptions, ...(signal ? { signal } : {}) });
    try {
      fingerprints[basename(file)] = await modelFingerprint(file);
      if (fi === 0) {
        const tokens = await inputTokens(model, o, 'compare()');
        fingerprints.text = tokensFingerprint(tokens);
        referenceFile = join(cacheDir, `reference-${fingerprints.text}-${basename(file)}${kldTopK ? `.top${kldTopK}` : ''}.kld`);
        reference = await evaluate(model, {
          tokens,
          ...contextOptions,
          ...(chunks ? { chunks } : {}),
          saveReference: referenceFile,
          ...(kldTopK ? { kldTopK } : {}),
          signal,
          onProgress: (p) => onEvent?.({ kind: 'evaluate', model: basename(file), routing: 'default', done, total, chunksDone: p.chunksDone, chunksTotal: p.chunksTotal }),
        });
      }
      const info = model.info;
      const ctx = await model.createContext(contextOptions);
      try {
        for (const routing of routings) {
          const isReference = fi === 0 && resolveRouting(routing, info).isDefault;
          const r = isReference
            ? reference!
            : await evaluate(ctx, {
                reference: referenceFile,
                routing,
                signal,
                onProgress: (p) => onEvent?.({ kind: 'evaluate', model: basename(file), routing: resolveRouting(routing, info).label, done, total, chunksDone: p.chunksDone, chunksTotal: p.chunksTotal }),
              });
          const row: ResultRow = {
            model: labels.get(file) ?? basename(file),
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
            threads: r.threads,
            expertsPerToken: r.expertsPerToken.perLayer.length ? r.expertsPerToken.mean : null,
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
      reference: `${basename(source)}, default routing${kldTopK ? ` (compact base, top ${kldTopK})` : ''}`,
      text: typeof o.file === 'string' ? basename(o.file) : o.text !== undefined ? '(text given directly)' : '(tokens given directly)',
      contextSize: reference!.contextSize,
      batchSize: reference!.batchSize,
      threads: reference!.threads,
      chunks: reference!.chunks.length,
      scoredTokens: reference!.scoredTokens,
      quantize: quantize.join(', ') || 'none',
      routings: routings.length,
    },
    fingerprints,
    rows,
    referenceFile,
    cacheDir,
  };
}
