/**
 * Quantization recipes for compare(): a llama-quantize type × an importance matrix (a file, or
 * collected on a calibration text) × per-tensor overrides, written as one string the way people
 * name their quants — `q4_k_m`, `iq2_xxs+imatrix`, `iq2_xxs+imatrix, ffn_down_exps=q4_k, attn=q6_k, pure` —
 * or as an object. makeRecipe() turns one into a quantized file in a cache folder.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';

import { type ImatrixOptions, imatrix } from './imatrix.js';
import { loadModel } from './model.js';
import { type TensorTypeOverride, parseTensorType, quantTypeId, quantTypeNeedsImatrix, quantizeModel } from './quantize.js';
import { checkOptionNames, expected, optionsObject } from './validate.js';

/** Calibration text for an importance matrix collected by compare(): imatrix()'s options without `out`. */
export type ImatrixSource = Omit<ImatrixOptions, 'out' | 'outputFormat' | 'onProgress' | 'signal'>;

export interface QuantizeRecipe {
  /** A llama-quantize type (QUANT_TYPES). */
  type: string;
  /**
   * An importance matrix: a file (llama-imatrix's GGUF or .dat), calibration options collected with
   * imatrix(), or true for compare()'s `calibration`.
   */
  imatrix?: string | ImatrixSource | true;
  tensorTypes?: (string | TensorTypeOverride)[];
  outputType?: string;
  tokenEmbeddingType?: string;
  pure?: boolean;
  /** The name of the row (default: the recipe written as a string). */
  label?: string;
}

/**
 * `TYPE[+imatrix][, REGEX=TYPE…][, pure]` → a recipe. `+imatrix` stands for compare()'s calibration
 * text; `+imatrix=FILE` names a file.
 */
export function parseRecipe(spec: string, name = 'recipe'): QuantizeRecipe {
  if (typeof spec !== 'string' || spec.trim() === '') throw new TypeError(expected('a recipe such as iq2_xxs+imatrix, ffn_down_exps=q4_k', name, spec));
  const [head, ...rest] = spec.split(',').map((s) => s.trim()).filter(Boolean);
  const plus = head!.indexOf('+');
  const type = plus < 0 ? head! : head!.slice(0, plus);
  const recipe: QuantizeRecipe = { type, label: spec.trim() };
  if (plus >= 0) {
    const im = head!.slice(plus + 1);
    if (im === 'imatrix') recipe.imatrix = true;
    else if (im.startsWith('imatrix=') && im.length > 8) recipe.imatrix = im.slice(8);
    else throw new RangeError(expected('TYPE+imatrix or TYPE+imatrix=FILE', name, spec));
  }
  for (const part of rest) {
    if (part === 'pure') recipe.pure = true;
    else (recipe.tensorTypes ??= []).push(part);
  }
  return checkRecipe(recipe, name);
}

/** Validates a recipe (string or object) before any work; returns it as an object with a label. */
export function checkRecipe(r: string | QuantizeRecipe, name: string): QuantizeRecipe {
  if (typeof r === 'string') return parseRecipe(r, name);
  const o = optionsObject(r, name);
  checkOptionNames(o, ['type', 'imatrix', 'tensorTypes', 'outputType', 'tokenEmbeddingType', 'pure', 'label'], name);
  quantTypeId(o.type as string);
  if (o.tensorTypes !== undefined && !Array.isArray(o.tensorTypes)) throw new TypeError(expected('an array of NAME=TYPE strings', `${name}.tensorTypes`, o.tensorTypes));
  ((o.tensorTypes as (string | TensorTypeOverride)[] | undefined) ?? []).forEach((t, i) => parseTensorType(t, `${name}.tensorTypes[${i}]`));
  if (o.imatrix === undefined && quantTypeNeedsImatrix(o.type as string)) {
    throw new RangeError(`Quantization type ${String(o.type)} in ${name} needs an importance matrix: write it as ${String(o.type)}+imatrix (with compare()'s calibration text) or give imatrix`);
  }
  if (o.imatrix !== undefined && o.imatrix !== true && typeof o.imatrix !== 'string' && (typeof o.imatrix !== 'object' || o.imatrix === null)) {
    throw new TypeError(expected('a file path, calibration options or true', `${name}.imatrix`, o.imatrix));
  }
  const recipe = o as unknown as QuantizeRecipe;
  return { ...recipe, label: recipe.label ?? recipeLabel(recipe) };
}

function recipeLabel(r: QuantizeRecipe): string {
  const head = r.type.toLowerCase() + (r.imatrix === undefined ? '' : typeof r.imatrix === 'string' ? `+imatrix=${basename(r.imatrix)}` : '+imatrix');
  const tt = (r.tensorTypes ?? []).map((t) => (typeof t === 'string' ? t : `${t.pattern}=${t.type}`));
  return [head, ...tt, ...(r.outputType ? [`output=${r.outputType}`] : []), ...(r.tokenEmbeddingType ? [`token_embd=${r.tokenEmbeddingType}`] : []), ...(r.pure ? ['pure'] : [])].join(', ');
}

/** A short stable id of what decides a recipe's output (for cache file names). */
function recipeId(r: QuantizeRecipe, imatrixFile: string | undefined): string {
  const { label: _label, imatrix: _imatrix, ...rest } = r;
  return createHash('sha256').update(JSON.stringify({ ...rest, imatrix: imatrixFile ?? null })).digest('hex').slice(0, 10);
}

export interface MakeRecipeContext {
  source: string;
  cacheDir: string;
  /** The calibration text for `+imatrix` (compare()'s `calibration`). */
  calibration?: ImatrixSource;
  threads?: number;
  onQuantize?: (fraction: number, file: string) => void;
  signal?: AbortSignal;
}

/**
 * Makes (or finds in the cache) the file of one recipe: collects its importance matrix first when it
 * names calibration text (cached by the calibration options' hash). Returns the quantized file's path.
 */
/** Whether a recipe is just a type (its row is named by its file, as compare() always did). */
export function isPlainRecipe(r: QuantizeRecipe): boolean {
  return r.imatrix === undefined && !r.tensorTypes?.length && !r.outputType && !r.tokenEmbeddingType && !r.pure;
}

export async function makeRecipe(recipe: QuantizeRecipe, c: MakeRecipeContext): Promise<string> {
  const stem = basename(c.source, extname(c.source));
  let imatrixFile: string | undefined;
  if (typeof recipe.imatrix === 'string') imatrixFile = resolve(recipe.imatrix);
  else if (recipe.imatrix !== undefined) {
    const cal = recipe.imatrix === true ? c.calibration : recipe.imatrix;
    if (!cal) throw new TypeError(`Expected calibration (the text an importance matrix is collected on) for compare() recipe ${recipe.label} but received none`);
    const { tokens, ...rest } = cal as ImatrixSource & { tokens?: Int32Array | readonly number[] };
    const key = createHash('sha256').update(JSON.stringify(rest)).update(tokens ? Buffer.from(Int32Array.from(tokens).buffer) : Buffer.alloc(0)).digest('hex').slice(0, 10);
    imatrixFile = join(c.cacheDir, `${stem}.imatrix-${key}.gguf`);
    if (!existsSync(imatrixFile) || statSync(imatrixFile).mtimeMs < statSync(c.source).mtimeMs) {
      const model = await loadModel(c.source, c.signal ? { signal: c.signal } : {});
      try {
        await imatrix(model, { ...(cal as ImatrixOptions), ...(c.signal ? { signal: c.signal } : {}), out: imatrixFile });
      } finally {
        await model.dispose();
      }
    }
  }
  // a plain type keeps the name compare() always gave it
  const plain = isPlainRecipe(recipe);
  const out = join(c.cacheDir, `${stem}.${recipe.type.toLowerCase()}${plain ? '' : `-${recipeId(recipe, imatrixFile)}`}.gguf`);
  const newest = Math.max(statSync(c.source).mtimeMs, imatrixFile ? statSync(imatrixFile).mtimeMs : 0);
  if (!existsSync(out) || statSync(out).mtimeMs < newest) {
    await quantizeModel(c.source, out, {
      type: recipe.type,
      ...(imatrixFile ? { imatrix: imatrixFile } : {}),
      ...(recipe.tensorTypes ? { tensorTypes: recipe.tensorTypes } : {}),
      ...(recipe.outputType ? { outputType: recipe.outputType } : {}),
      ...(recipe.tokenEmbeddingType ? { tokenEmbeddingType: recipe.tokenEmbeddingType } : {}),
      ...(recipe.pure ? { pure: true } : {}),
      ...(c.threads ? { threads: c.threads } : {}),
      onProgress: (f) => c.onQuantize?.(f, out),
    });
  }
  return out;
}

