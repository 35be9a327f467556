/**
 * What the RandomX benchmarks share: the median, the report files, the entry point, building
 * the reference, reserving huge pages for it, and CPU time from /proc.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { JobHooks } from '../../src/randomx/types';

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

export function buildReference(source: string): string {
  fs.mkdirSync(OUT, { recursive: true });
  const binary = path.join(OUT, 'rxref');
  execFileSync('cc', ['-O2', '-o', binary, source, '-lrandomx', '-lpthread']);
  return binary;
}

export const HUGEPAGES = '/proc/sys/vm/nr_hugepages';
/** The yardstick: 1200 pages of 2 MiB reserved, enough for the dataset and the VMs. */
export const RESERVED_PAGES = 1200;

/**
 * Run `fn` with RESERVED_PAGES huge pages reserved, then put the old count back. Throws if the
 * kernel could not reserve them all (fragmented memory), as the comparison would be unfair.
 */
export async function withReservedPages<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = fs.readFileSync(HUGEPAGES, 'utf8').trim();
  try {
    fs.writeFileSync(HUGEPAGES, String(RESERVED_PAGES));
    const got = Number(fs.readFileSync(HUGEPAGES, 'utf8'));
    if (got < RESERVED_PAGES)
      throw new Error(`only ${got} of ${RESERVED_PAGES} huge pages reserved`);
    return await fn();
  } finally {
    fs.writeFileSync(HUGEPAGES, before);
  }
}

/** CPU seconds (utime + stime) of a process, or of one of its threads. */
export function cpuSeconds(pid: number, tid?: number): number {
  const file = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  const stat = fs.readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of each thread of a process but its main one, by thread id. */
export function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // the process is gone
  }
  for (const tid of tids.map(Number)) {
    if (tid === pid) continue;
    try {
      out.set(tid, cpuSeconds(pid, tid));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** The CPU seconds of the `count` threads that used most between two threadCpu snapshots. */
export function busiestThreads(
  before: Map<number, number>,
  after: Map<number, number>,
  count: number,
): number {
  const used = [...after].map(([tid, cpu]) => cpu - (before.get(tid) ?? 0));
  return used
    .sort((a, b) => b - a)
    .slice(0, count)
    .reduce((a, b) => a + b, 0);
}

/**
 * Run the reference and follow its threads' CPU (sampled every 20 ms): its hashing threads
 * are the last `threads` it started (after the dataset's threads have ended), so their CPU
 * is hashing alone, without the dataset build.
 */
export async function runRxref(
  binary: string,
  args: string[],
  threads: number,
): Promise<{ output: string; hashingCpuSeconds: number }> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = child.pid ?? 0;
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  const seen = new Map<number, { order: number; cpu: number }>();
  const timer = setInterval(() => {
    for (const [tid, cpu] of threadCpu(pid)) {
      const known = seen.get(tid);
      if (known) known.cpu = cpu;
      else seen.set(tid, { order: seen.size, cpu });
    }
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`${binary} ${args.join(' ')}: exit ${code}\n${output}`);
  if (!/vector-1a \S+ ok/.test(output)) throw new Error(`reference failed its vector:\n${output}`);
  const hashing = [...seen.values()].sort((a, b) => a.order - b.order).slice(-threads);
  return { output, hashingCpuSeconds: hashing.reduce((sum, t) => sum + t.cpu, 0) };
}

/** A `name=value` number from the reference's output. */
export const rxrefField = (output: string, name: string): number =>
  Number(new RegExp(`${name}=([0-9.]+)`).exec(output)?.[1]);

/** Hooks for a job run on the engine straight, with no task around it: nothing pauses it. */
export function engineHooks(): JobHooks {
  return {
    signal: new AbortController().signal,
    paused: false,
    onPauseChange: () => () => {},
    progress: () => {},
    setPhase: () => {},
  };
}
