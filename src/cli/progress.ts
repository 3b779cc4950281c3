/**
 * Progress on stderr, only when stderr is a terminal (cli-progress): one line of chunks for an
 * evaluation, and above it a line of points for work made of several evaluations (a sweep's grid, a
 * comparison's models × routings). Every display is registered, so that an error or an interrupt can
 * stop them all before its message is printed: a bar never draws over a message, and no bar's timer
 * keeps the process alive after the work has ended.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** The outer count: points of a grid, models of a comparison. */
  points(done: number, total: number, label?: string): void;
  /** The inner count: chunks of the evaluation under way. */
  chunks(done: number, total: number, extra?: string): void;
  stop(): void;
}

const active = new Set<cliProgress.MultiBar>();

/** Stops every progress display (before an error or "interrupted" is printed). */
export function stopAllProgress(): void {
  for (const m of active) m.stop();
  active.clear();
}

/** A line on stderr that never collides with a bar (printed above the bars while they run). */
export function notice(text: string): void {
  const line = `moe-eval: ${text}\n`;
  const [bar] = active;
  if (bar) bar.log(line);
  else process.stderr.write(line);
}

function formatSeconds(t: number): string {
  const s = Math.round(t);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

const silent: Progress = { points() {}, chunks() {}, stop() {} };

/** `unit` names what the inner count counts (chunks of an evaluation, repetitions of a benchmark). */
export function progress(label: string, enabled = true, unit = 'chunks'): Progress {
  if (!enabled || !process.stderr.isTTY) return silent;
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 8,
      format: '{label} [{bar}] {value}/{total} {unit} | ETA {eta_formatted} | {extra}',
      // cli-progress prints an unknown ETA ("INF", "NULL") cut to two letters; say "…" instead
      formatTime: (t: unknown) => (typeof t === 'number' && Number.isFinite(t) ? formatSeconds(t) : '…'),
    },
    cliProgress.Presets.shades_classic,
  );
  active.add(multi);
  let outer: cliProgress.SingleBar | undefined;
  let inner: cliProgress.SingleBar | undefined;
  let stopped = false;
  return {
    points(done, total, text = '') {
      if (stopped) return;
      if (!outer) outer = multi.create(total, done, { label, unit: 'points', extra: text });
      outer.setTotal(total);
      outer.update(done, { extra: text });
    },
    chunks(done, total, extra = '') {
      if (stopped) return;
      if (!inner) inner = multi.create(total, done, { label: outer ? ' '.repeat(label.length) : label, unit, extra });
      inner.setTotal(total);
      inner.update(done, { extra });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
      active.delete(multi);
    },
  };
}
