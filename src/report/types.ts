/**
 * The data model of a report: one ResultRow per evaluated (model file, routing) pair, plus the
 * settings and fingerprints that make the numbers reproducible. Everything in src/report/ reads only
 * these types, so a report can be rebuilt later from results.json alone.
 */

export interface ResultRow {
  model: string; // model file name
  fileType: string; // e.g. 'F16', 'Q8_0', 'Q4_K_M'
  sizeBytes: number;
  bitsPerWeight: number;
  routing: string; // routing label, e.g. 'default', 'experts=3 scale=uniform'
  experts: number; // experts used per token
  scaleRule: string; // 'none' | 'seed-uniform' | 'uniform' | 'zipf:1' | 'calibrated' | 'custom' ...
  perplexity: number;
  stderr: number;
  deltaPercent: number | null; // ΔPPL % vs the reference row
  kldMean: number | null; // mean KL-divergence vs reference (nats)
  sameTopPercent: number | null; // % tokens whose argmax equals the reference's
  tokensPerSecond: number;
  /** CPU threads tokensPerSecond was measured with (null when unknown). */
  threads: number | null;
  /** k̄: experts actually mixed per token, mean over MoE layers, measured from the graph (null when unknown). */
  expertsPerToken?: number | null;
}

/** A sensitivity scan (src/scan.ts) for the heatmap: one row per MoE layer, one column per change. */
export interface ScanReport {
  layers: number[];
  changes: string[];
  /** kld[i][j]: mean KLD with layer layers[i] changed by changes[j]. */
  kld: number[][];
  /** ΔPPL % against the default routing, same shape. */
  deltaPercent: number[][];
}

export interface ReportData {
  title: string;
  createdAt: string; // ISO date
  settings: Record<string, string | number | boolean>;
  fingerprints: Record<string, string>; // e.g. model sha256, text sha256
  rows: ResultRow[];
  /** A sensitivity scan, drawn as a heatmap (optional). */
  scan?: ScanReport;
}

/**
 * The ResultRow fields in the order every output (CSV header, JSON rows) uses, so a column never
 * moves between runs and results.csv files stay diffable.
 */
export const RESULT_COLUMNS = [
  'model',
  'fileType',
  'sizeBytes',
  'bitsPerWeight',
  'routing',
  'experts',
  'scaleRule',
  'perplexity',
  'stderr',
  'deltaPercent',
  'kldMean',
  'sameTopPercent',
  'tokensPerSecond',
  'threads',
  'expertsPerToken',
] as const satisfies readonly (keyof ResultRow)[];

/** One rendered plot: `name` is the file stem of its .svg (e.g. 'perplexity-vs-bpw'). */
export interface Plot {
  name: string;
  title: string;
  svg: string;
}

// Compile-time proof that RESULT_COLUMNS names every ResultRow field: a field added to ResultRow
// without a column here fails the build instead of silently missing from results.csv.
const everyFieldHasAColumn: Exclude<keyof ResultRow, (typeof RESULT_COLUMNS)[number]> extends never ? true : never = true;
void everyFieldHasAColumn;
