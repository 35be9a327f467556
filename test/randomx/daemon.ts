/** Start vigild (which carries the RandomX capability) on a private bus, for e2e tests. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Message } from '../../src/bus/wire/message';
import { waitForBusName } from '../helpers/bus';
import { IFACE, ROOT, TestClient, plain, type SignalLog } from '../helpers/client';
import { VIGILD } from '../helpers/daemon';
export const RX_PATH = `${ROOT}/RandomX`;
export const RX_IFACE = `${IFACE}RandomX`;
export const TASK_IFACE = `${IFACE}Task`;

export interface RxDaemon {
  pid: number;
  output(): string;
  exited: Promise<number | string>;
  stop(): Promise<number | string>;
  kill(): Promise<number | string>;
}

/** A config file with a `[randomx]` section. */
export function randomxConfig(dir: string, lines: string[]): string {
  const file = path.join(dir, 'vigil.conf');
  fs.writeFileSync(file, ['[randomx]', ...lines, ''].join('\n'));
  return file;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * vigild with RandomX on `address`. Its dataset cache is `cacheDir`, by default a fresh
 * directory, so no test reads (or fills) the machine's own.
 */
export async function startRxDaemon(
  address: string,
  stateDir: string,
  config: string,
  prefix: string[] = [],
  cacheDir = tempDir('vigil-rx-cache-'),
): Promise<RxDaemon> {
  const argv = [...prefix, process.execPath, VIGILD];
  argv.push('--bus', address, '--state-dir', stateDir, '--config', config, '--cache-dir', cacheDir);
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, JOURNAL_STREAM: '' },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  await waitForBusName(address, {
    pid: child.pid,
    exited,
    describe: () => out,
    timeoutMs: 30000,
  });
  return {
    pid: child.pid ?? 0,
    output: () => out,
    exited,
    stop: async () => {
      if (alive()) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (alive()) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function processCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime, in clock ticks of 1/100 s (CLK_TCK on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Task.Wait: the result as plain values, or the D-Bus error. */
export async function waitTask(client: TestClient, task: string): Promise<Record<string, unknown>> {
  const [result] = await client.call(task, TASK_IFACE, 'Wait');
  return plain(result) as Record<string, unknown>;
}

export async function taskProp(client: TestClient, task: string, name: string): Promise<unknown> {
  return client.get(task, TASK_IFACE, name);
}

/** Wait until a task property satisfies `pred`. */
export async function untilTask(
  client: TestClient,
  task: string,
  name: string,
  pred: (value: unknown) => boolean,
  timeoutMs = 30000,
): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await taskProp(client, task, name);
    if (pred(value)) return value;
    if (Date.now() > deadline) throw new Error(`task ${name} stayed ${String(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function finishedOf(log: SignalLog, task: string): Promise<Message> {
  return log.waitFor((m) => m.path === task && m.member === 'Finished', 60000);
}
