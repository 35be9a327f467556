/**
 * Wake latency on the wire: from an ARP request for a sleeping host to the magic packet, both
 * timestamped by one tcpdump on the sleeper's wire, for vigil (cooldown 0) and for the
 * reference approach (bench/wol/baseline.py: AF_PACKET reader + one wake process per trigger).
 *
 *   sudo node dist/bench/wol/latency.js [TRIGGERS=1000] [INTERVAL_MS=20]
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPrivateBus } from '../../test/helpers/bus';
import type { Lan } from '../../test/helpers/netns';
import { magicPayload, readPcap } from '../../test/helpers/pcap';
import { until } from '../../test/helpers/wait';
import { INJECT, startVigil } from '../../test/helpers/wol';
import { parseIpv4, parseMac } from '../../src/wol/addresses';
import {
  benchLan,
  captureOnSleeper,
  machine,
  MAC,
  percentile,
  SLEEPER_IP,
  stopProcess,
  writeConfig,
} from './common';

const SOURCE_DIR = path.resolve(__dirname, '../../../bench/wol');

interface Result {
  name: string;
  triggers: number;
  magic: number;
  matched: number;
  latenciesMs: number[];
}

/** Pair each request from the requester with the first magic packet after it (and before the next). */
function latencies(pcap: string): { triggers: number; magic: number; latenciesMs: number[] } {
  const records = readPcap(pcap);
  const requester = parseMac(MAC.requester)!;
  const target = parseIpv4(SLEEPER_IP)!;
  const requests = records
    .filter(
      (r) =>
        r.data.length >= 42 &&
        r.data.readUInt16BE(12) === 0x0806 &&
        r.data.readUInt16BE(20) === 1 &&
        r.data.subarray(6, 12).equals(requester) &&
        r.data.readUInt32BE(38) === target,
    )
    .map((r) => r.timeUs);
  const magic = records
    .filter((r) => magicPayload(r.data)?.mac === MAC.sleeper)
    .map((r) => r.timeUs);
  // Cooldown 0 and nothing else sends magic packets: the i-th packet answers the i-th request.
  // (When counts differ, pair each request with the first packet after it instead.)
  const out: number[] = [];
  if (magic.length === requests.length) {
    requests.forEach((t, i) => out.push((magic[i] - t) / 1000));
  } else {
    let m = 0;
    for (let i = 0; i < requests.length; i++) {
      while (m < magic.length && magic[m] < requests[i]) m++;
      const next = requests[i + 1] ?? Infinity;
      if (m < magic.length && magic[m] < next) out.push((magic[m] - requests[i]) / 1000);
    }
  }
  return { triggers: requests.length, magic: magic.length, latenciesMs: out.sort((a, b) => a - b) };
}

const withMatched = (l: ReturnType<typeof latencies>) => ({ ...l, matched: l.latenciesMs.length });

/** Send the triggers from the requester; async, so this process keeps draining its children's output. */
async function trigger(lan: Lan, count: number, intervalMs: number): Promise<void> {
  const child = lan.spawn('requester', process.execPath, [
    INJECT,
    'eth0',
    'trigger',
    String(count),
    String(intervalMs),
    MAC.requester,
    '10.9.0.2',
    SLEEPER_IP,
  ]);
  const code = await new Promise((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`injector exited with ${String(code)}`);
}

async function measureVigil(
  lan: Lan,
  dir: string,
  count: number,
  intervalMs: number,
): Promise<Result> {
  const bus = await startPrivateBus();
  const pcap = path.join(dir, 'vigil.pcap');
  const dump = await captureOnSleeper(lan, pcap);
  // Timeout 1 s: "unknown" turns offline at once, and every trigger finds it offline or waking.
  const vigil = await startVigil(
    lan,
    'watcher',
    bus.address,
    path.join(dir, 'state'),
    writeConfig(dir, 0, 1),
  );
  try {
    await until(() => vigil.output().includes('is offline'), 10000);
    await trigger(lan, count, intervalMs);
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    await vigil.stop();
    await stopProcess(dump);
    await bus.stop();
  }
  return { name: 'vigil (node, cap + dgram)', ...withMatched(latencies(pcap)) };
}

async function measureBaseline(
  lan: Lan,
  dir: string,
  count: number,
  intervalMs: number,
): Promise<Result> {
  const wake = path.join(dir, 'wake');
  execFileSync('cc', ['-O2', '-o', wake, path.join(SOURCE_DIR, 'wake.c')]);
  const pcap = path.join(dir, 'baseline.pcap');
  const dump = await captureOnSleeper(lan, pcap);
  const baseline = spawn('ip', [
    'netns',
    'exec',
    lan.node('watcher').netns,
    '/usr/bin/python3',
    path.join(SOURCE_DIR, 'baseline.py'),
    'eth0',
    wake,
    '10.9.0.255',
    `${SLEEPER_IP}=${MAC.sleeper}`,
  ]);
  let out = '';
  baseline.stdout.on('data', (d: Buffer) => (out += d.toString()));
  baseline.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await until(
      () => out.includes('ready'),
      10000,
      () => `baseline: ${out}`,
    );
    await trigger(lan, count, intervalMs);
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    await stopProcess(baseline, 'SIGKILL');
    await stopProcess(dump);
  }
  return {
    name: 'baseline (python3 AF_PACKET + C wake process per trigger)',
    ...withMatched(latencies(pcap)),
  };
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 1000);
  const intervalMs = Number(process.argv[3] ?? 20);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-wol-'));
  const lan = benchLan(`vb${process.pid}`);
  const results: Result[] = [];
  try {
    const only = process.env.BENCH_ONLY;
    if (only !== 'baseline') results.push(await measureVigil(lan, dir, count, intervalMs));
    if (only !== 'vigil') results.push(await measureBaseline(lan, dir, count, intervalMs));
  } finally {
    lan.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const f = (n: number) => n.toFixed(3);
  console.log(`machine: ${machine()}`);
  console.log(`${count} ARP requests, one every ${intervalMs} ms, cooldown 0\n`);
  console.log(
    '| implementation | requests on wire | magic packets | paired | p50 ms | p90 ms | p99 ms | max ms |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const l = r.latenciesMs;
    console.log(
      `| ${r.name} | ${r.triggers} | ${r.magic} | ${r.matched} | ${f(percentile(l, 0.5))} | ${f(percentile(l, 0.9))} | ${f(percentile(l, 0.99))} | ${f(l[l.length - 1] ?? NaN)} |`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
