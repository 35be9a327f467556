/**
 * Tasks under hostile users and heavy jobs (issues 10, 12, 13), measured with dbus-python and
 * Gio clients, each scenario on its own private bus with a fresh vigild:
 *   churn    3 clients of uid 65534 loop slow + Cancel; then RSS and GetManagedObjects
 *   hog      uid 65534 holds 64 queued and 2 paused tasks; another UID's slow(1) queue-to-running
 *   budget   50 HashBatch jobs of 4 MiB (64 x 64 KiB); the history database's size
 *   readers  2 dozen such jobs and 2 with big results; 100 GetHistory(0) by uid 65534: RSS, ms
 *
 *   node dist/bench/tasks/run.js [--churn-seconds 60] [--only churn,hog,budget,readers]
 *                                [--baseline DIST --baseline-label NAME]
 *   (DIST: another build's dist/, e.g. of the commit before a change, run side by side)
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { startPrivateBus } from '../../test/helpers/bus';
import { startDaemon, tempStateDir, type DaemonProcess } from '../../test/helpers/daemon';
import { MULTIUSER_BUS_CONFIG } from '../../test/helpers/fixture';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const CLIENTS = path.resolve(__dirname, '../../../bench/tasks/clients.py');
const HASHBATCH = path.resolve(__dirname, '../../../test/helpers/hashbatch.py');
const HOSTILE = 65534;
const OTHER = 5; // games: an ordinary user with a passwd entry

interface Build {
  label: string;
  vigild: string;
}

async function client<T>(uid: number, args: (string | number)[]): Promise<T> {
  const { stdout } = await run(PYTHON, [CLIENTS, ...args.map(String)], {
    uid,
    gid: uid,
    maxBuffer: 256 << 20,
  });
  return JSON.parse(stdout) as T;
}

async function hashBatches(
  address: string,
  jobs: number,
  inputs: number,
  size: number,
  complete: number,
): Promise<void> {
  await run(PYTHON, [HASHBATCH, address, jobs, inputs, size, complete].map(String), {
    maxBuffer: 1 << 20,
  });
}

const rssMiB = (pid: number): number =>
  Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (xs: number[], p: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

/** A private multi-user bus and vigild of `build` with `config` in its [daemon] section. */
async function withDaemon<T>(
  build: Build,
  config: string,
  args: string[],
  body: (address: string, daemon: DaemonProcess) => Promise<T>,
): Promise<T> {
  const bus = await startPrivateBus(MULTIUSER_BUS_CONFIG);
  const stateDir = tempStateDir();
  const file = path.join(stateDir, 'vigil.conf');
  fs.writeFileSync(file, `[daemon]\n${config}[randomx]\nthreads = 2\n`);
  // Another build's vigild: the launcher runs `node THIS_VIGILD ARGS...`; drop the first two.
  const prefix = build.vigild
    ? ['sh', '-c', 'shift 2; exec "$0" "$VIGILD_UNDER_TEST" "$@"', process.execPath]
    : [];
  const daemon = await startDaemon(bus.address, {
    stateDir,
    args: ['--config', file, ...args],
    prefix,
    env: { VIGILD_UNDER_TEST: build.vigild && path.resolve(build.vigild, 'src/daemon/vigild.js') },
  });
  try {
    return await body(bus.address, daemon);
  } finally {
    await daemon.stop();
    await bus.stop();
  }
}

type Row = [string, ...string[]];

async function churn(build: Build, seconds: number): Promise<Row[]> {
  return withDaemon(build, '', [], async (address, daemon) => {
    const pid = daemon.child.pid as number;
    const before = rssMiB(pid);
    const loops = await Promise.all(
      [1, 2, 3].map(() => client<{ cycles: number }>(HOSTILE, ['churn', address, seconds])),
    );
    const after = rssMiB(pid);
    const m = await client<{ bytes: number[]; ms: number[]; errors: string[] }>(0, [
      'managed',
      address,
      5,
    ]);
    return [
      [
        `${build.label}: slow+Cancel cycles in ${seconds} s (3 clients)`,
        String(loops.reduce((n, l) => n + l.cycles, 0)),
      ],
      [
        `${build.label}: RSS before / after the churn (MiB)`,
        `${before.toFixed(0)} / ${after.toFixed(0)}`,
      ],
      [
        `${build.label}: GetManagedObjects after it: bytes, median ms (5 calls)`,
        m.errors.length
          ? `refused: ${m.errors[0]}`
          : `${median(m.bytes)}, ${median(m.ms).toFixed(1)}`,
      ],
    ];
  });
}

async function hog(build: Build): Promise<Row[]> {
  return withDaemon(build, 'max_running = 2\n', ['--slow-pace-ms', '100'], async (address) => {
    const h = await client<{ ids: string[]; paused: string[] }>(HOSTILE, [
      'hog',
      address,
      64,
      20,
      2,
    ]);
    const r = await client<{ ms: (number | null)[] }>(OTHER, ['to-running', address, 20]);
    const ran = r.ms.filter((x): x is number => x !== null);
    return [
      [`${build.label}: hog holds (tasks, paused)`, `${h.ids.length}, ${h.paused.length}`],
      [
        `${build.label}: another UID's slow(1) queue-to-running ms, p50 / max (${r.ms.length} runs)`,
        ran.length === r.ms.length
          ? `${median(ran).toFixed(1)} / ${Math.max(...ran).toFixed(1)}`
          : `${r.ms.length - ran.length} of ${r.ms.length} not running after 10 s`,
      ],
    ];
  });
}

async function budget(build: Build): Promise<Row[]> {
  let stateDir = '';
  await withDaemon(build, '', [], async (address, daemon) => {
    stateDir = daemon.stateDir;
    await hashBatches(address, 50, 64, 65536, 2);
  });
  const files = fs.readdirSync(stateDir).filter((f) => f.startsWith('vigil.db'));
  const bytes = files.reduce((n, f) => n + fs.statSync(path.join(stateDir, f)).size, 0);
  return [
    [`${build.label}: history database after 50 HashBatch jobs of 4 MiB (bytes)`, String(bytes)],
  ];
}

async function readers(build: Build): Promise<Row[]> {
  return withDaemon(build, '', [], async (address, daemon) => {
    await hashBatches(address, 24, 64, 65536, 0);
    await hashBatches(address, 2, 160, 64, 2);
    const pid = daemon.child.pid as number;
    const before = rssMiB(pid);
    const h = await client<{ bytes: number[]; ms: number[]; errors: string[] }>(HOSTILE, [
      'history',
      address,
      100,
    ]);
    const after = rssMiB(pid);
    return [
      [
        `${build.label}: RSS before / after 100 GetHistory(0) by uid 65534 (MiB)`,
        `${before.toFixed(0)} / ${after.toFixed(0)}`,
      ],
      [
        `${build.label}: GetHistory(0) reply bytes, ms p50 / p99`,
        h.errors.length
          ? `refused: ${h.errors[0]}`
          : `${median(h.bytes)}, ${median(h.ms).toFixed(1)} / ${percentile(h.ms, 0.99).toFixed(1)}`,
      ],
    ];
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'churn-seconds': { type: 'string', default: '60' },
      only: { type: 'string', default: 'churn,hog,budget,readers' },
      baseline: { type: 'string' },
      'baseline-label': { type: 'string', default: 'baseline' },
    },
  });
  const builds: Build[] = [{ label: 'this build', vigild: '' }];
  if (values.baseline) {
    builds.push({ label: String(values['baseline-label']), vigild: values.baseline });
  }
  const only = new Set(String(values.only).split(','));
  const rows: Row[] = [];
  for (const build of builds) {
    if (only.has('churn')) rows.push(...(await churn(build, Number(values['churn-seconds']))));
    if (only.has('hog')) rows.push(...(await hog(build)));
    if (only.has('budget')) rows.push(...(await budget(build)));
    if (only.has('readers')) rows.push(...(await readers(build)));
  }
  console.log('| measure | value |\n|---|---|');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

void main();
