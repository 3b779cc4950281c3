/** Progress bars on stderr, only when stderr is a TTY (cli-progress); silent otherwise. */
import cliProgress from 'cli-progress';

export interface Bar {
  update(done: number, total: number, extra?: string): void;
  stop(): void;
}

export function progressBar(label: string): Bar {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {value}/{total} chunks | ETA {eta_formatted} | {extra}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 4,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, extra = '') {
      if (!started) {
        bar.start(total, 0, { extra });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { extra });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
