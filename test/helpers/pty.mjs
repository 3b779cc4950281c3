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

/**
 * The text a terminal would show at the end: the output replayed on a minimal screen that knows the
 * few controls progress bars use (carriage return, cursor to column n, cursor up, erase to the end of
 * the line or screen), so a bar that was cleared is gone and a message printed over it is on its own line.
 */
export function finalScreen(screen) {
  const lines = [''];
  let row = 0;
  let col = 0;
  const put = (ch) => {
    const line = lines[row].padEnd(col, ' ');
    lines[row] = line.slice(0, col) + ch + line.slice(col + 1);
    col++;
  };
  for (let i = 0; i < screen.length; i++) {
    const ch = screen[i];
    if (ch === '\x1b') {
      const m = /^\x1b\[([0-9;?]*)([A-Za-z])/.exec(screen.slice(i));
      if (!m) continue;
      i += m[0].length - 1;
      const n = m[1] === '' || m[1].startsWith('?') ? undefined : Number(m[1].split(';')[0]);
      if (m[1].startsWith('?')) continue;
      if (m[2] === 'G') col = (n ?? 1) - 1;
      else if (m[2] === 'A') row = Math.max(0, row - (n ?? 1));
      else if (m[2] === 'K') lines[row] = lines[row].slice(0, col);
      else if (m[2] === 'J') {
        lines[row] = lines[row].slice(0, col);
        lines.length = row + 1;
      }
      continue;
    }
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      col = 0;
      if (lines.length <= row) lines.push('');
    } else put(ch);
  }
  return lines.join('\n');
}

/** Everything printed, without colour and cursor controls (what was drawn at some point). */
export function plain(screen) {
  return screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}
