import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in a Markdown file. */
export function replaceSection(file: string, name: string, body: string): void {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const text = readFileSync(file, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${file} has no ${start} ... ${end} section`);
  writeFileSync(file, `${text.slice(0, from + start.length)}\n${body.trim()}\n${text.slice(to)}`);
}

/** Prints a benchmark's report and what it wrote; unless `noDocs`, also puts the report into its section of docs/benchmarks.md. */
export function publishReport(program: string, options: { root: string; section: string; body: string; written: string[]; noDocs: boolean }): void {
  const { root, section, body, written, noDocs } = options;
  console.log(`\n${body}\n`);
  console.log(`${program}: wrote ${written.map((file) => path.relative(root, file)).join(' and ')}`);
  if (noDocs) return;
  replaceSection(path.join(root, 'docs', 'benchmarks.md'), section, body);
  console.log(`${program}: updated docs/benchmarks.md`);
}
