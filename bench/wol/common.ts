import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lan } from '../../test/helpers/netns';
import { capture } from '../../test/helpers/pcap';
import { configText } from '../../test/helpers/wol';

export const MAC = {
  watcher: '02:00:00:00:01:01',
  requester: '02:00:00:00:01:02',
  sleeper: '02:00:00:00:01:03',
};
export const SLEEPER_IP = '10.9.0.3';

/** watcher 10.9.0.1, requester 10.9.0.2, sleeper (no address: asleep) behind one bridge. */
export function benchLan(tag: string): Lan {
  const lan = new Lan(tag);
  lan.addNode({ name: 'watcher', mac: MAC.watcher, cidr: '10.9.0.1/24' });
  lan.addNode({ name: 'requester', mac: MAC.requester, cidr: '10.9.0.2/24' });
  lan.addNode({ name: 'sleeper', mac: MAC.sleeper });
  return lan;
}

export function writeConfig(dir: string, cooldown: number, timeout: number): string {
  const file = path.join(dir, 'vigil.conf');
  const sleepy = { ip: SLEEPER_IP, mac: MAC.sleeper, interface: 'eth0', timeout, cooldown };
  fs.writeFileSync(file, configText({ 'host:sleepy': sleepy }));
  return file;
}

/** tcpdump on the sleeper's wire, delivering each frame at once (no buffering delay). */
export async function captureOnSleeper(lan: Lan, file: string): Promise<ChildProcess> {
  return capture(lan, 'sleeper', file, 'arp or udp port 9');
}

export async function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGINT',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

export function machine(): string {
  const cpu = fs
    .readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('model name'))
    ?.split(':')[1]
    ?.trim();
  const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  return `${cpu ?? 'unknown CPU'}, ${os.cpus().length} CPUs, Linux ${kernel}, Node ${process.version}`;
}
