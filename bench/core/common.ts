import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BusConnection, watchNameOwner } from '../../src/bus/connection';

/**
 * What the daemon-core benchmarks share: the services compared (vigild as shipped, the core
 * alone, the tutorial's dbus-python service and a C sd-bus one), starting them on a bus and
 * knowing when they own the name, and reading a process's CPU time and RSS from /proc.
 */

export const NAME = 'org.vigil.Vigil1';
export const RD = '/org/vigil/Vigil1/RandomData';
export const RD_IFACE = 'org.vigil.Vigil1.RandomData';
const VIGILD = path.resolve(__dirname, '../../src/daemon/vigild.js');
const VIGILD_CORE = path.resolve(__dirname, 'vigild-core.js');
/** The bench sources (python and C files are not compiled into dist/). */
export const BENCH_SOURCE = path.resolve(__dirname, '../../../bench/core');
export const PYTHON = '/usr/bin/python3';

export interface Service {
  label: string;
  start(address: string): ChildProcess;
}

export const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-'));

function node(label: string, script: string, stateName: string, extra: string[] = []): Service {
  return {
    label,
    start: (address) =>
      spawn(
        process.execPath,
        [...extra, script, '--bus', address, '--state-dir', path.join(stateRoot, stateName)],
        { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, JOURNAL_STREAM: '' } },
      ),
  };
}

/** vigild as shipped: core, RandomX and Wake-on-LAN (node flags in `nodeArgs`, e.g. --cpu-prof). */
export function vigildService(nodeArgs: string[] = []): Service {
  return node('vigild (as shipped)', VIGILD, 'vigild', nodeArgs);
}

export const coreService: Service = node('vigil core only', VIGILD_CORE, 'core');

export const pythonService: Service = {
  label: 'dbus-python',
  start: (address) =>
    spawn(PYTHON, [path.join(BENCH_SOURCE, 'python_service.py')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: address },
    }),
};

/** Compile the C sd-bus service (libsystemd-dev, scripts/bootstrap installs it) once. */
export function sdbusService(): Service {
  const binary = path.join(stateRoot, 'sdbus_service');
  const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libsystemd'])
    .toString()
    .trim()
    .split(/\s+/);
  execFileSync('cc', [
    '-O2',
    '-Wall',
    '-o',
    binary,
    path.join(BENCH_SOURCE, 'sdbus_service.c'),
    ...flags,
  ]);
  return {
    label: 'C sd-bus',
    start: (address) =>
      spawn(binary, [], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: address },
      }),
  };
}

/** Resolves with the monotonic time (ns) at which NAME gets an owner on `watcher`'s bus. */
async function nameOwned(watcher: BusConnection): Promise<() => Promise<bigint>> {
  let resolveOwned: (t: bigint) => void = () => undefined;
  const owned = new Promise<bigint>((resolve) => (resolveOwned = resolve));
  await watchNameOwner(watcher, NAME, (owner) => {
    if (owner !== '') resolveOwned(process.hrtime.bigint());
  });
  return () => owned;
}

/** Start `service`, wait for its name; returns the child and the exec-to-owned time in ms. */
export async function launch(
  service: Service,
  address: string,
  watcher: BusConnection,
): Promise<{ child: ChildProcess; ms: number }> {
  const owned = await nameOwned(watcher);
  const t0 = process.hrtime.bigint();
  const child = service.start(address);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`${service.label} exited (${code})`))),
  );
  const timeout = sleep(30000).then(() => {
    throw new Error(`${service.label} did not own ${NAME} in 30 s`);
  });
  const t1 = await Promise.race([owned(), exited, timeout]);
  return { child, ms: Number(t1 - t0) / 1e6 };
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** A process's CPU time in clock ticks (utime + stime, all threads) from /proc/PID/stat. */
export function cpuTicks(pid: number): number {
  // Fields after the ")" of the command name; utime and stime are the 14th and 15th.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

export function rssKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
}

export function environment(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  let python = '';
  try {
    python = execFileSync(PYTHON, ['--version']).toString().trim();
  } catch {
    python = 'python3 missing';
  }
  const dbusVersion = execFileSync('dbus-daemon', ['--version']).toString().split('\n')[0];
  return `${cpu} x${os.availableParallelism()}, Linux ${os.release()}, node ${process.version}, ${python}, ${dbusVersion}`;
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/** A markdown table: a label column, then one column per result. */
export function markdownTable<R>(
  results: readonly R[],
  heading: (r: R) => string,
  rows: readonly [string, (r: R) => string][],
): string {
  const widths = [
    Math.max(...rows.map(([l]) => l.length)),
    ...results.map((r) => Math.max(heading(r).length, ...rows.map(([, v]) => v(r).length))),
  ];
  const line = (cells: string[]): string =>
    '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [
    line(['', ...results.map(heading)]),
    '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|',
    ...rows.map(([label, value]) => line([label, ...results.map(value)])),
  ].join('\n');
}

export function connect(address: string): Promise<BusConnection> {
  return BusConnection.open(address);
}
