/** Tables (cli-table3) and JSON for command results. Colour only on a TTY and without NO_COLOR. */
import Table from 'cli-table3';

export const useColor = (): boolean => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

const style = () => ({ compact: true, head: useColor() ? ['cyan'] : [], border: useColor() ? ['grey'] : [] });

export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({ head, style: style() });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

/** A two-column table of facts, without a header row. */
export function factsTable(rows: [string, string | number][]): string {
  const t = new Table({ style: style() });
  for (const [k, v] of rows) t.push([k, String(v)]);
  return t.toString();
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
