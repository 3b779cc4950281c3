/**
 * How every table, report and summary writes each quantity: one function per quantity, so the same
 * number reads the same everywhere (llama-perplexity's digits where it prints the quantity).
 */

const finite = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x);

/** Perplexity: 4 decimals (llama-perplexity's "Final estimate"). */
export const formatPerplexity = (x: number | null | undefined): string => (finite(x) ? x.toFixed(4) : '-');

/** The ± of a perplexity: 5 decimals, as llama-perplexity prints it. */
export const formatStderr = (x: number | null | undefined): string => (finite(x) ? x.toFixed(5) : '-');

/** Mean KL-divergence: 6 decimals (llama-perplexity's "Mean KLD"). */
export const formatKld = (x: number | null | undefined): string => (finite(x) ? x.toFixed(6) : '-');

/** A percentage given in percent: 2 decimals and a % sign. */
export const formatPercent = (x: number | null | undefined): string => (finite(x) ? `${x.toFixed(2)} %` : '-');

/** A change in percent, signed. */
export const formatDeltaPercent = (x: number | null | undefined): string => (finite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(2)} %` : '-');

/** A scale factor: 4 decimals. */
export const formatFactor = (x: number | null | undefined): string => (finite(x) ? x.toFixed(4) : '-');

/** Tokens per second: whole tokens. */
export const formatTokensPerSecond = (x: number | null | undefined): string => (finite(x) ? x.toFixed(0) : '-');

/** Bits per weight: 2 decimals. */
export const formatBitsPerWeight = (x: number | null | undefined): string => (finite(x) ? x.toFixed(2) : '-');

/** Bytes as MiB with one decimal. */
export const formatMiB = (bytes: number | null | undefined): string => (finite(bytes) ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : '-');
