import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitForBusName } from '../helpers/bus';
import { VIGILD } from '../helpers/daemon';
import type { Lan } from '../helpers/netns';

export const INJECT = path.resolve(__dirname, 'fixtures/inject.js');

export interface VigilProcess {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 15000,
  message: () => string = () => 'condition not met',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(message());
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start the real vigild in `node`'s namespace and wait until it owns its name. */
export async function startVigil(
  lan: Lan,
  node: string,
  address: string,
  stateDir: string,
  config: string,
  wrap: string[] = [],
): Promise<VigilProcess> {
  const args = ['netns', 'exec', lan.node(node).netns, ...wrap, process.execPath, VIGILD];
  args.push('--bus', address, '--state-dir', stateDir, '--config', config);
  const child = spawn('ip', args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, JOURNAL_STREAM: '' },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForBusName(address, { pid: child.pid, exited, describe: () => out });
  return {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
