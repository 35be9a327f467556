/** What the RandomX benchmarks share: the median, the report files and the entry point. */
import fs from 'node:fs';
import path from 'node:path';

export const OUT = path.resolve(__dirname, '../../../bench/out');

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Write the raw runs to bench/out/NAME and print the Markdown rows. */
export function report(name: string, runs: unknown, rows: string[]): void {
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, name), JSON.stringify(runs, null, 2));
  console.log(rows.join('\n'));
}

export function runBench(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
