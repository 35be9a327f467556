/**
 * The daemon under ARP load: its CPU use and the latency of RandomData.quick over D-Bus while
 * 10,000 ARP requests per second (for addresses nobody watches) arrive, next to the same
 * measurements with the LAN idle. Then the same with two sleeping hosts the sleep proxy
 * answers for, under 10,000 frames per second, half ARP requests and half Neighbor
 * Solicitations, one in a hundred for a proxied address (answered, at most 100 a second).
 *
 *   sudo node dist/bench/wol/load.js [FRAMES_PER_SECOND=10000] [SECONDS=10]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPrivateBus } from '../../test/helpers/bus';
import { TestClient } from '../../test/helpers/client';
import { Lan } from '../../test/helpers/netns';
import { until } from '../../test/helpers/wait';
import { configText, INJECT, startVigil } from '../../test/helpers/wol';
import { benchLan, machine, percentile, writeConfig } from './common';

const WOL_PATH = '/org/vigil/Vigil1/WakeOnLan';
const WOL = 'org.vigil.Vigil1.WakeOnLan';
const CLOCK_TICKS = 100; // USER_HZ on Linux

function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

interface Phase {
  name: string;
  seconds: number;
  framesPerSecond: number;
  cpuPercent: number;
  calls: number;
  p50: number;
  p99: number;
  max: number;
}

async function measure(
  name: string,
  client: TestClient,
  pid: number,
  seconds: number,
): Promise<Phase> {
  const framesBefore = Number(await client.get(WOL_PATH, WOL, 'FramesSeen'));
  const ticksBefore = cpuTicks(pid);
  const started = process.hrtime.bigint();
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const t0 = process.hrtime.bigint();
    await client.call(
      '/org/vigil/Vigil1/RandomData',
      'org.vigil.Vigil1.RandomData',
      'quick',
      'i',
      [64],
    );
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await new Promise((r) => setTimeout(r, 10));
  }
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const frames = Number(await client.get(WOL_PATH, WOL, 'FramesSeen')) - framesBefore;
  const ticks = cpuTicks(pid) - ticksBefore;
  latencies.sort((a, b) => a - b);
  return {
    name,
    seconds: elapsed,
    framesPerSecond: frames / elapsed,
    cpuPercent: (ticks / CLOCK_TICKS / elapsed) * 100,
    calls: latencies.length,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    max: latencies[latencies.length - 1] ?? NaN,
  };
}

/** Two sleeping hosts (no address, ARP off, no IPv6) that vigil proxies for. */
function proxyLan(tag: string, dir: string): { lan: Lan; config: string } {
  const lan = new Lan(tag);
  lan.addNode({
    name: 'watcher',
    mac: '02:00:00:00:08:01',
    cidr: '10.9.0.1/24',
    ipv6: true,
    cidr6: ['fd00::1/64'],
  });
  lan.addNode({ name: 'requester', mac: '02:00:00:00:08:02', cidr: '10.9.0.2/24' });
  const hosts: Record<string, Record<string, string | number>> = {};
  for (const n of [3, 4]) {
    lan.addNode({ name: `sleeper${n}`, mac: `02:00:00:00:08:0${n}` });
    lan.exec(`sleeper${n}`, 'ip', ['link', 'set', 'eth0', 'arp', 'off']);
    hosts[`host:sleepy${n}`] = {
      ip: `10.9.0.${n}`,
      ip6: `fd00::${n}`,
      mac: `02:00:00:00:08:0${n}`,
      interface: 'eth0',
      proxy: 'yes',
      wake_ports: 22,
      timeout: 2,
    };
  }
  const config = path.join(dir, 'proxy.conf');
  fs.writeFileSync(config, configText(hosts));
  return { lan, config };
}

async function scenario(
  label: string,
  lan: Lan,
  config: string,
  stateDir: string,
  injector: string[],
  rate: number,
  seconds: number,
  ready: (client: TestClient) => Promise<void>,
): Promise<Phase[]> {
  const bus = await startPrivateBus();
  const phases: Phase[] = [];
  try {
    const vigil = await startVigil(lan, 'watcher', bus.address, stateDir, config);
    const pid = vigil.child.pid!;
    const client = await TestClient.connect(bus.address);
    try {
      await ready(client);
      await measure('warm-up', client, pid, 2); // JIT and bus connection warm-up, not reported
      phases.push(await measure(`${label}, idle LAN`, client, pid, seconds));
      const child = lan.spawn('requester', process.execPath, [
        INJECT,
        'eth0',
        injector[0],
        String(rate),
        String(seconds + 3),
        ...injector.slice(1),
      ]);
      let report = '';
      child.stdout?.on('data', (d: Buffer) => (report += d.toString()));
      const done = new Promise((r) => child.once('exit', r));
      await new Promise((r) => setTimeout(r, 1000)); // warm up
      phases.push(
        await measure(
          `${label}, ${rate} ${injector[0] === 'load' ? 'ARP requests' : 'ARP+NS frames'}/s`,
          client,
          pid,
          seconds,
        ),
      );
      await done;
      console.log(`injector (${label}): ${report.trim()}`);
    } finally {
      client.close();
      await vigil.stop();
    }
  } finally {
    await bus.stop();
  }
  return phases;
}

async function main(): Promise<void> {
  const rate = Number(process.argv[2] ?? 10000);
  const seconds = Number(process.argv[3] ?? 10);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-wol-load-'));
  const phases: Phase[] = [];
  try {
    const lan = benchLan(`vl${process.pid}`);
    try {
      phases.push(
        ...(await scenario(
          'one host, no proxy',
          lan,
          writeConfig(dir, 10, 90),
          path.join(dir, 'state'),
          ['load'],
          rate,
          seconds,
          async () => undefined,
        )),
      );
    } finally {
      lan.destroy();
    }
    const proxied = proxyLan(`vq${process.pid}`, dir);
    try {
      const proxying = async (client: TestClient) => {
        for (const n of [3, 4]) {
          await until(
            async () =>
              (await client.get(
                `/org/vigil/Vigil1/Hosts/sleepy${n}`,
                'org.vigil.Vigil1.Host',
                'Proxying',
              )) === true,
            15000,
          );
        }
      };
      phases.push(
        ...(await scenario(
          'two proxied hosts',
          proxied.lan,
          proxied.config,
          path.join(dir, 'state-proxy'),
          ['load6', '10.9.0.3', '10.9.0.4'],
          rate,
          seconds,
          proxying,
        )),
      );
    } finally {
      proxied.lan.destroy();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const f = (n: number, d = 2) => n.toFixed(d);
  console.log(`machine: ${machine()}\n`);
  console.log(
    '| LAN | seconds | frames handled/s | vigild CPU % | quick calls | quick p50 ms | quick p99 ms | quick max ms |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const p of phases) {
    console.log(
      `| ${p.name} | ${f(p.seconds, 1)} | ${f(p.framesPerSecond, 0)} | ${f(p.cpuPercent, 1)} | ${p.calls} | ${f(p.p50, 3)} | ${f(p.p99, 3)} | ${f(p.max, 3)} |`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
