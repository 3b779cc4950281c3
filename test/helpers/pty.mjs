// Runs a command in a real pseudo-terminal (util-linux `script`, in Debian's essential bsdutils), as a
// person at a terminal would: stdout and stderr are a TTY, so progress bars draw; Ctrl-C is typed as
// the byte 0x03, which the terminal turns into SIGINT for the foreground process.
import { spawn } from 'node:child_process';

/**
 * Starts `argv` in a pty. `onOutput(screen, api)` sees everything printed so far each time more
 * arrives; `api.ctrlC()` types Ctrl-C. Resolves with the exit code and the whole output once the
 * command has ended.
 */
export function runInTerminal(argv, { onOutput, env } = {}) {
  const quoted = argv.map((a) => `'${String(a).replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qfec', quoted, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm', COLUMNS: '120', ...env } });
  let screen = '';
  const api = {
    ctrlC: () => child.stdin.write('\x03'),
    startedAt: Date.now(),
  };
  return new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      screen += d;
      onOutput?.(screen, api);
    });
    child.stderr.on('data', (d) => (screen += d));
    child.on('exit', (code, signal) => resolve({ code, signal, screen, ms: Date.now() - api.startedAt }));
  });
}

/** The text a terminal would show, without colour and cursor escapes. */
export function plain(screen) {
  return screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}
