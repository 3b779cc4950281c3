/** Tables (cli-table3) and JSON for command results. Colour only on a TTY and without NO_COLOR. */
import Table from 'cli-table3';

export const useColor = (): boolean => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({ head, style: { compact: true, head: useColor() ? ['cyan'] : [], border: useColor() ? ['grey'] : [] } });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function fmt(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}
