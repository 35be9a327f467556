import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitForBusName } from './bus';

/** Path of the compiled daemon (tests run from dist/test). */
export const VIGILD = path.resolve(__dirname, '../../src/daemon/vigild.js');
export const VIGILCTL = path.resolve(__dirname, '../../src/cli/vigilctl.js');

export interface DaemonProcess {
  child: ChildProcess;
  stateDir: string;
  /** Everything the daemon printed so far. */
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  /** SIGTERM and wait. */
  stop(): Promise<number | string>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

export interface DaemonStartOptions {
  stateDir?: string;
  args?: string[];
  /** Wrap the command, e.g. ['ip', 'netns', 'exec', 'ns1']. */
  prefix?: string[];
  env?: NodeJS.ProcessEnv;
  /** Do not wait for the name (for tests of failing starts). */
  noWait?: boolean;
  spawnOptions?: SpawnOptions;
}

export function tempStateDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-state-'));
}

/** Start vigild on `address` and wait until it owns its name (it claims it last). */
export async function startDaemon(
  address: string,
  opts: DaemonStartOptions = {},
): Promise<DaemonProcess> {
  const stateDir = opts.stateDir ?? tempStateDir();
  const argv = [
    ...(opts.prefix ?? []),
    process.execPath,
    VIGILD,
    '--bus',
    address,
    '--state-dir',
    stateDir,
    ...(opts.args ?? []),
  ];
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, JOURNAL_STREAM: '', ...opts.env },
    ...opts.spawnOptions,
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const proc: DaemonProcess = {
    child,
    stateDir,
    output: () => out,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (opts.noWait) return proc;
  await waitForBusName(address, {
    pid: child.pid,
    exited,
    describe: () => out,
    timeoutMs: 20000,
  });
  return proc;
}
