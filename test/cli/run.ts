import { spawn, type ChildProcess } from 'node:child_process';
import { VIGILCTL } from '../helpers/daemon';

export interface CtlResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * An environment with no session bus, so vigilctl only ever reaches the private bus the test
 * names (never the machine's own).
 */
export function isolatedEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('DBUS_SESSION_BUS_ADDRESS' in extra)) delete env.DBUS_SESSION_BUS_ADDRESS;
  if (!('VIGIL_BUS_ADDRESS' in extra)) delete env.VIGIL_BUS_ADDRESS;
  return env;
}

/** Run the real vigilctl binary to completion (as another user when `uid` is given). */
export function runCtl(
  args: string[],
  env: NodeJS.ProcessEnv = isolatedEnv(),
  uid?: number,
): Promise<CtlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VIGILCTL, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(uid === undefined ? {} : { uid, gid: uid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A long-running program (vigilctl watch, a D-Bus client) whose output lines can be awaited. */
export class WatchedProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(file: string, args: string[], env: NodeJS.ProcessEnv = isolatedEnv()) {
    this.child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const changed = (): void => {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    };
    this.child.stdout?.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      changed();
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      changed();
    });
    this.exited = new Promise((resolve) => this.child.once('close', (code) => resolve(code)));
  }

  stdoutLines(): string[] {
    return this.stdout.split('\n').filter((l) => l !== '');
  }

  /** Wait until `pred` holds for the output so far. */
  async until(pred: (p: this) => boolean, what: string, timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this)) {
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null) {
        throw new Error(`${what} did not happen; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  kill(signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** A long-running vigilctl (watch, random slow). */
export class CtlProcess extends WatchedProcess {
  constructor(args: string[], env: NodeJS.ProcessEnv = isolatedEnv()) {
    super(process.execPath, [VIGILCTL, ...args], env);
  }
}
