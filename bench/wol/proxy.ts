/**
 * The sleep proxy on the wire, in the case issue 8 measured: a requester that has the sleeping
 * host's MAC cached opens TCP connections to it.
 *
 *   1. First SYN → magic packet, over IPv4 and IPv6, with `proxy` on, and the same trials with
 *      `proxy` off (today's behaviour): the requester's entry is put back to the host's MAC
 *      (STALE, "I talked to it an hour ago") before each trial. Both ends are kernel timestamps
 *      of one tcpdump on the requester's wire (without proxy the SYNs never reach vigil's).
 *      Then one connection left to retry for WINDOW seconds per family without proxy: when,
 *      if ever, does a magic packet go out?
 *   2. Hand-back: from the host's first frame (on vigil's wire) to the requester's neighbour
 *      entry showing the host's real MAC (`ip -ts monitor neigh` in the requester's namespace),
 *      for its IPv4 and IPv6 address.
 *
 *   sudo node dist/bench/wol/proxy.js [TRIALS=200] [HANDBACKS=50] [WINDOW_S=40]
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPrivateBus, type PrivateBus } from '../../test/helpers/bus';
import { TestClient } from '../../test/helpers/client';
import { Lan } from '../../test/helpers/netns';
import type { DaemonProcess } from '../../test/helpers/daemon';
import {
  capture,
  isTcpSyn,
  magicPayload,
  readPcap,
  type PcapRecord,
} from '../../test/helpers/pcap';
import { until } from '../../test/helpers/wait';
import {
  addDualStackNode,
  configText,
  fallAsleep,
  injectFrames,
  startVigil,
  unicastFrame,
} from '../../test/helpers/wol';
import { machine, percentile, stopProcess } from './common';

const MAC = {
  vigil: '02:00:00:00:07:01',
  requester: '02:00:00:00:07:02',
  sleeper: '02:00:00:00:07:03',
};
const IP = { vigil: '10.9.0.1', requester: '10.9.0.2', sleeper: '10.9.0.3' };
const ULA = { vigil: 'fd00::1', requester: 'fd00::2', sleeper: 'fd00::3' };
const HOST_PATH = '/org/vigil/Vigil1/Hosts/sleepy';
const HOST = 'org.vigil.Vigil1.Host';
/** How long each connection attempt waits for its magic packet before it is abandoned. */
const TRIAL_MS = 100;

function config(dir: string, proxy: boolean): string {
  const file = path.join(dir, `vigil-${proxy ? 'proxy' : 'plain'}.conf`);
  fs.writeFileSync(
    file,
    configText({
      wol: { interfaces: 'eth0' },
      'host:sleepy': {
        ip: IP.sleeper,
        ip6: ULA.sleeper,
        mac: MAC.sleeper,
        interface: 'eth0',
        proxy: proxy ? 'yes' : 'no',
        wake_ports: 22,
        timeout: 1,
        cooldown: 0, // every SYN is a trial: each must wake
      },
    }),
  );
  return file;
}

function lanFor(tag: string): Lan {
  const lan = new Lan(tag);
  for (const name of ['watcher', 'requester', 'sleeper'] as const) {
    const key = name === 'watcher' ? 'vigil' : name;
    addDualStackNode(lan, { name, mac: MAC[key], ip: IP[key], ula: ULA[key] });
  }
  return lan;
}

/** Connection attempts from the requester, one after the other; prints each source port. */
const TRIALS_SCRIPT = `
  const net = require('net');
  const { execFileSync } = require('child_process');
  const [host, count, waitMs, reseed] = process.argv.slice(1);
  (async () => {
    for (let i = 0; i < Number(count); i++) {
      if (reseed) execFileSync('ip', reseed.split(' '));
      await new Promise((resolve) => {
        const s = net.connect({ host, port: 22 });
        s.once('error', () => undefined);
        setTimeout(() => { console.log(s.localPort ?? 0); s.destroy(); setTimeout(resolve, 30); }, Number(waitMs));
      });
    }
  })();`;

async function runTrials(lan: Lan, target: string, count: number, reseed?: string): Promise<void> {
  const child = lan.spawn('requester', process.execPath, [
    '-e',
    TRIALS_SCRIPT,
    target,
    String(count),
    String(TRIAL_MS),
    reseed ?? '',
  ]);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`trials: ${err}`);
}

/** SYNs from the requester to port 22 of `family` since `since` (µs). */
function syns(records: PcapRecord[], family: 4 | 6, since: number): PcapRecord[] {
  const requester = Buffer.from(MAC.requester.replace(/:/g, ''), 'hex');
  return records.filter(
    (r) =>
      r.timeUs >= since && r.data.subarray(6, 12).equals(requester) && isTcpSyn(r.data, 22, family),
  );
}

/** A broadcast ARP request or a multicast NS from the requester for the host's address. */
function asksForHost(d: Buffer, family: 4 | 6): boolean {
  if (!d.subarray(6, 12).equals(Buffer.from(MAC.requester.replace(/:/g, ''), 'hex'))) return false;
  if (family === 4) {
    return (
      d.length >= 42 &&
      d.subarray(0, 6).equals(Buffer.alloc(6, 0xff)) && // not NUD's unicast probes
      d.readUInt16BE(12) === 0x0806 &&
      d.readUInt16BE(20) === 1 &&
      d.subarray(38, 42).join('.') === IP.sleeper
    );
  }
  return (
    d.length >= 78 &&
    d.readUInt16BE(12) === 0x86dd &&
    d[0] === 0x33 &&
    d[20] === 58 &&
    d[54] === 135 &&
    d.subarray(62, 78).equals(Buffer.from('fd000000000000000000000000000003', 'hex'))
  );
}

/** Each trial's first SYN, and the first magic packet after it within the trial (µs apart). */
function pair(
  records: PcapRecord[],
  family: 4 | 6,
  since: number,
): { trials: number; latenciesMs: number[] } {
  // One connection is its source port and initial sequence number (ports get reused).
  const firstByPort = new Map<string, number>();
  for (const s of syns(records, family, since)) {
    const tcp = family === 4 ? 14 + (s.data[14] & 0x0f) * 4 : 54;
    const key = `${s.data.readUInt16BE(tcp)}|${s.data.readUInt32BE(tcp + 4)}`;
    if (!firstByPort.has(key)) firstByPort.set(key, s.timeUs);
  }
  const magic = records
    .filter((r) => r.timeUs >= since && magicPayload(r.data)?.mac === MAC.sleeper)
    .map((r) => r.timeUs);
  const latencies: number[] = [];
  for (const t of firstByPort.values()) {
    const m = magic.find((x) => x >= t && x - t <= TRIAL_MS * 1000);
    if (m !== undefined) latencies.push((m - t) / 1000);
  }
  return { trials: firstByPort.size, latenciesMs: latencies.sort((a, b) => a - b) };
}

interface Row {
  scenario: string;
  trials: number;
  woken: number;
  latenciesMs: number[];
}

async function startDaemon(
  lan: Lan,
  bus: PrivateBus,
  dir: string,
  proxy: boolean,
): Promise<DaemonProcess> {
  return startVigil(
    lan,
    'watcher',
    bus.address,
    path.join(dir, `state-${proxy}`),
    config(dir, proxy),
  );
}

/** The requester talks to the awake host over both families, so it caches its MAC. */
function cacheHost(lan: Lan): void {
  for (const ip of [IP.sleeper, ULA.sleeper]) {
    lan.exec('requester', 'bash', ['-c', `echo hello > /dev/udp/${ip}/9`]);
  }
}

const neighbourMac = (lan: Lan, ip: string): string => lan.neighbour('requester', ip);

async function main(): Promise<void> {
  const trials = Number(process.argv[2] ?? 200);
  const handbacks = Number(process.argv[3] ?? 50);
  const windowS = Number(process.argv[4] ?? 40);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-proxy-'));
  const lan = lanFor(`vx${process.pid}`);
  const bus = await startPrivateBus();
  // The requester's wire for SYNs and magic packets, vigil's for the host's frame.
  const pcap = path.join(dir, 'requester.pcap');
  const vigilPcap = path.join(dir, 'vigil.pcap');
  const dumps = [await capture(lan, 'requester', pcap), await capture(lan, 'watcher', vigilPcap)];
  const rows: Row[] = [];
  const handBack: { v4: number[]; v6: number[] } = { v4: [], v6: [] };
  const longWindow: string[] = [];
  let monitor: ChildProcess | undefined;
  const client = await TestClient.connect(bus.address);
  try {
    // Without proxy first: the host is asleep, the requester has its MAC cached.
    await new Promise((r) => setTimeout(r, 2000)); // let the nodes' own IPv6 chatter settle
    cacheHost(lan);
    await new Promise((r) => setTimeout(r, 300));
    fallAsleep(lan, 'sleeper');
    let vigil = await startDaemon(lan, bus, dir, false);
    await until(() => vigil.output().includes('sleepy (10.9.0.3) is offline'), 10000);
    for (const [family, target] of [
      [4, IP.sleeper],
      [6, ULA.sleeper],
    ] as const) {
      const since = Date.now() * 1000;
      const reseed = `${family === 4 ? '-4' : '-6'} neigh replace ${target} lladdr ${MAC.sleeper} dev eth0 nud stale`;
      await runTrials(lan, target, trials, reseed);
      await new Promise((r) => setTimeout(r, 300));
      const p = pair(readPcap(pcap), family, since);
      rows.push({
        scenario: `IPv${family}, proxy off (today)`,
        trials: p.trials,
        woken: p.latenciesMs.length,
        latenciesMs: p.latenciesMs,
      });
    }
    // One connection per family left to retry, as a user's ssh would.
    {
      const since = Date.now() * 1000;
      for (const [family, target] of [
        [4, IP.sleeper],
        [6, ULA.sleeper],
      ] as const) {
        lan.exec('requester', 'ip', [
          family === 4 ? '-4' : '-6',
          'neigh',
          'replace',
          target,
          'lladdr',
          MAC.sleeper,
          'dev',
          'eth0',
          'nud',
          'stale',
        ]);
      }
      const script = `const net = require('net'); for (const h of ${JSON.stringify([IP.sleeper, ULA.sleeper])}) { const s = net.connect({ host: h, port: 22 }); s.on('error', () => undefined); } setTimeout(() => process.exit(0), ${windowS * 1000});`;
      const child = lan.spawn('requester', process.execPath, ['-e', script]);
      await new Promise((r) => child.once('exit', r));
      const records = readPcap(pcap);
      for (const family of [4, 6] as const) {
        const first = syns(records, family, since)[0];
        const request = records.find((r) => r.timeUs >= since && asksForHost(r.data, family));
        const magic = records.find(
          (r) =>
            r.timeUs >= (request?.timeUs ?? Infinity) && magicPayload(r.data)?.mac === MAC.sleeper,
        );
        const at = (r: PcapRecord | undefined, from = first): string =>
          r && from ? `${((r.timeUs - from.timeUs) / 1e6).toFixed(1)} s` : 'never';
        longWindow.push(
          `IPv${family}, proxy off: ${syns(records, family, since).length} SYNs in ${windowS} s; ` +
            `the requester's first ${family === 4 ? 'ARP request' : 'Neighbor Solicitation'} for the host ` +
            `${at(request)} after the first SYN, the magic packet it caused ${at(magic, request)} after it`,
        );
      }
    }
    await vigil.stop();

    // Proxy on: the host is awake again, then sleeps and vigil takes over.
    lan.exec('sleeper', 'ip', ['link', 'set', 'eth0', 'arp', 'on']);
    lan.addAddress('sleeper', `${IP.sleeper}/24`);
    lan.setSysctl('sleeper', 'net.ipv6.conf.eth0.disable_ipv6=0');
    lan.addAddress('sleeper', `${ULA.sleeper}/64`);
    vigil = await startDaemon(lan, bus, dir, true);
    await until(async () => (await client.get(HOST_PATH, HOST, 'State')) === 'online', 10000);
    cacheHost(lan);
    await new Promise((r) => setTimeout(r, 300));
    fallAsleep(lan, 'sleeper');
    const proxying = async () => (await client.get(HOST_PATH, HOST, 'Proxying')) === true;
    await until(proxying, 15000, () => vigil.output().slice(-2000));
    for (const [family, target] of [
      [4, IP.sleeper],
      [6, ULA.sleeper],
    ] as const) {
      await until(() => neighbourMac(lan, target) === MAC.vigil, 5000);
      const since = Date.now() * 1000;
      await runTrials(lan, target, trials);
      await new Promise((r) => setTimeout(r, 300));
      const p = pair(readPcap(pcap), family, since);
      rows.push({
        scenario: `IPv${family}, proxy on`,
        trials: p.trials,
        woken: p.latenciesMs.length,
        latenciesMs: p.latenciesMs,
      });
    }

    // Hand-back: one frame from the host, then the requester's entries.
    monitor = lan.spawn('requester', 'ip', ['-ts', 'monitor', 'neigh']);
    const events: { at: number; ip: string; mac: string }[] = [];
    let pending = '';
    monitor.stdout?.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const m =
          /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\] (\S+) dev eth0 lladdr ([0-9a-f:]{17})/.exec(
            line,
          );
        if (m)
          events.push({ at: new Date(m[1]).getTime() * 1000 + Number(m[2]), ip: m[3], mac: m[4] });
      }
    });
    const macBytes = (m: string): Buffer => Buffer.from(m.replace(/:/g, ''), 'hex');
    const frame = unicastFrame(macBytes(MAC.vigil), macBytes(MAC.sleeper));
    for (let i = 0; i < handbacks; i++) {
      await until(proxying, 15000);
      await until(
        () =>
          neighbourMac(lan, IP.sleeper) === MAC.vigil &&
          neighbourMac(lan, ULA.sleeper) === MAC.vigil,
        5000,
      );
      cacheHost(lan); // the requester sends it traffic: vigil takes it and will tell it directly
      await new Promise((r) => setTimeout(r, 100));
      const mark = Date.now() * 1000;
      injectFrames(lan, 'sleeper', [frame]);
      await until(
        () =>
          events.some((e) => e.at >= mark && e.ip === IP.sleeper && e.mac === MAC.sleeper) &&
          events.some((e) => e.at >= mark && e.ip === ULA.sleeper && e.mac === MAC.sleeper),
        5000,
      );
      const sent = readPcap(vigilPcap).find(
        (r) => r.timeUs >= mark && r.data.readUInt16BE(12) === 0x88b5,
      );
      if (!sent) throw new Error('the host frame is not on vigil’s wire');
      for (const [key, ip] of [
        ['v4', IP.sleeper],
        ['v6', ULA.sleeper],
      ] as const) {
        const e = events.find((x) => x.at >= mark && x.ip === ip && x.mac === MAC.sleeper)!;
        handBack[key].push((e.at - sent.timeUs) / 1000);
      }
    }
    await vigil.stop();
  } finally {
    client.close();
    if (monitor) await stopProcess(monitor, 'SIGKILL');
    for (const dump of dumps) await stopProcess(dump);
    await bus.stop();
    lan.destroy();
    if (process.env.VIGIL_KEEP_TEST_FILES) console.error(`kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
  console.log(`machine: ${machine()}`);
  console.log(
    `${trials} connection attempts per row, each abandoned after ${TRIAL_MS} ms; cooldown 0\n`,
  );
  console.log('| scenario | trials | woken within the trial | p50 ms | p90 ms | p99 ms | max ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const l = r.latenciesMs;
    console.log(
      `| ${r.scenario} | ${r.trials} | ${r.woken} | ${f(percentile(l, 0.5))} | ${f(percentile(l, 0.9))} | ${f(percentile(l, 0.99))} | ${f(l[l.length - 1] ?? NaN)} |`,
    );
  }
  console.log('');
  for (const line of longWindow) console.log(`- ${line}`);
  console.log(
    `\nhand-back, host's first frame → requester's entry shows its MAC (${handbacks} trials):\n`,
  );
  console.log('| address | p50 ms | p90 ms | p99 ms | max ms |');
  console.log('|---|---|---|---|---|');
  for (const [key, label] of [
    ['v4', 'IPv4 (gratuitous ARP)'],
    ['v6', 'IPv6 (direct NA)'],
  ] as const) {
    const l = handBack[key].sort((a, b) => a - b);
    console.log(
      `| ${label} | ${f(percentile(l, 0.5))} | ${f(percentile(l, 0.9))} | ${f(percentile(l, 0.99))} | ${f(l[l.length - 1] ?? NaN)} |`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
