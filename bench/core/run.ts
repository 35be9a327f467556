import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { BusConnection } from '../../src/bus/connection';
import { startPrivateBus, type PrivateBus } from '../../test/helpers/bus';
import {
  CLK_TCK,
  cpuTicks,
  connect,
  coreService,
  environment,
  launch,
  loadAverage,
  markdownTable,
  NAME,
  percentile,
  pythonService,
  RD,
  RD_IFACE,
  rssKiB,
  type Service,
  stateRoot,
  stop,
  vigildService,
} from './common';

/**
 * Daemon-core benchmarks (issue 2), vigil side by side with the dbus-python tutorial stack:
 * Services: vigild as shipped (core + RandomX + Wake-on-LAN), the core alone (vigild-core.ts)
 * and the baseline (python_service.py).
 *   1. quick(16) calls/s and p50/p99 latency from one client process, sequential and in flight;
 *   2. idle RSS, CPU and context switches over two quiet windows after start (no polling);
 *   3. time from exec to the name being owned on the bus.
 * Each service runs on its own private dbus-daemon. Run through bench/core/run.
 */

const SERVICES: Service[] = [vigildService(), coreService, pythonService];

function quickCall(bus: BusConnection): Promise<unknown> {
  return bus.call({
    destination: NAME,
    path: RD,
    interface: RD_IFACE,
    member: 'quick',
    signature: 'i',
    body: [16],
  });
}

interface Throughput {
  /** Median over the rounds. */
  callsPerSecond: number;
  /** Over every call of every round. */
  p50us: number;
  p99us: number;
}

/** Rounds of one kind of run, folded into one Throughput. */
class Rounds {
  private readonly rates: number[] = [];
  private readonly latencies: number[] = [];

  add(calls: number, seconds: number, latencies: readonly number[]): void {
    this.rates.push(calls / seconds);
    for (const l of latencies) this.latencies.push(l);
  }

  result(): Throughput {
    const rates = [...this.rates].sort((x, y) => x - y);
    const lat = [...this.latencies].sort((x, y) => x - y);
    return {
      callsPerSecond: percentile(rates, 50),
      p50us: percentile(lat, 50),
      p99us: percentile(lat, 99),
    };
  }
}

/** `calls` quick(16) calls from `inFlight` concurrent loops on one connection. */
async function quickRun(
  bus: BusConnection,
  calls: number,
  inFlight: number,
  into?: Rounds,
): Promise<void> {
  const latencies: number[] = [];
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < calls) {
      next++;
      const t0 = process.hrtime.bigint();
      await quickCall(bus);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: inFlight }, loop));
  into?.add(calls, Number(process.hrtime.bigint() - start) / 1e9, latencies);
}

interface ProcSample {
  cpuTicks: number;
  rssKiB: number;
  contextSwitches: number;
}

function sample(pid: number): ProcSample {
  let contextSwitches = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const s = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    for (const m of s.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) {
      contextSwitches += Number(m[1]);
    }
  }
  return { cpuTicks: cpuTicks(pid), rssKiB: rssKiB(pid), contextSwitches };
}

interface Idle {
  rssStartMiB: number;
  rssEndMiB: number;
  cpuPercent: number;
  cpuMs: number;
  contextSwitches: number;
  threads: number;
}

async function idleWatch(pid: number, seconds: number): Promise<Idle> {
  const a = sample(pid);
  await sleep(seconds * 1000);
  const b = sample(pid);
  const cpuSeconds = (b.cpuTicks - a.cpuTicks) / CLK_TCK;
  return {
    rssStartMiB: a.rssKiB / 1024,
    rssEndMiB: b.rssKiB / 1024,
    cpuMs: cpuSeconds * 1000,
    cpuPercent: (100 * cpuSeconds) / seconds,
    contextSwitches: b.contextSwitches - a.contextSwitches,
    threads: fs.readdirSync(`/proc/${pid}/task`).length,
  };
}

interface Startup {
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
}

interface Result {
  label: string;
  sequential: Throughput;
  concurrent: Throughput;
  /** Two consecutive windows: right after start, and once V8's start-up housekeeping is over. */
  idle: [Idle, Idle];
  rssAfterLoadMiB: number;
  startup: Startup;
}

interface Options {
  calls: number;
  concurrentCalls: number;
  inFlight: number;
  idleSeconds: number;
  warmup: number;
  rounds: number;
  startups: number;
}

interface Running {
  service: Service;
  bus: PrivateBus;
  watcher: BusConnection;
  child: ChildProcess;
  client: BusConnection;
}

async function bringUp(service: Service): Promise<Running> {
  const bus = await startPrivateBus();
  const watcher = await connect(bus.address);
  const { child } = await launch(service, bus.address, watcher);
  const client = await connect(bus.address);
  return { service, bus, watcher, child, client };
}

async function tearDown(r: Running): Promise<void> {
  r.client.close();
  r.watcher.close();
  await stop(r.child);
  await r.bus.stop();
}

/**
 * All services side by side, each on its own bus. The machine may be busy with other work, so
 * the quick runs are interleaved in rounds (A, B, C, A, B, C, ...) and the startups alternate:
 * a burst of load hits every service alike rather than one of them.
 */
async function measureAll(opts: Options): Promise<Result[]> {
  const running: Running[] = [];
  try {
    for (const service of SERVICES) running.push(await bringUp(service));
    // Idle first, on services that have done nothing yet but start, all quiet together.
    await sleep(2000);
    const idle: [Idle, Idle][] = running.map(() => [] as unknown as [Idle, Idle]);
    for (const w of [0, 1]) {
      const windows = await Promise.all(
        running.map((r) => idleWatch(r.child.pid as number, opts.idleSeconds)),
      );
      windows.forEach((win, i) => (idle[i][w] = win));
    }
    // Warm-up: the services and this client's JIT alike.
    for (const r of running) {
      for (let i = 0; i < opts.warmup; i++) await quickCall(r.client);
      await quickRun(r.client, opts.warmup, opts.inFlight);
    }
    const sequential = running.map(() => new Rounds());
    const concurrent = running.map(() => new Rounds());
    for (let round = 0; round < opts.rounds; round++) {
      for (const [i, r] of running.entries()) {
        await quickRun(r.client, Math.ceil(opts.calls / opts.rounds), 1, sequential[i]);
        const n = Math.ceil(opts.concurrentCalls / opts.rounds);
        await quickRun(r.client, n, opts.inFlight, concurrent[i]);
      }
    }
    const rss = running.map((r) => sample(r.child.pid as number).rssKiB / 1024);
    for (const r of running.splice(0)) await tearDown(r);

    const times = SERVICES.map((): number[] => []);
    const buses = await Promise.all(SERVICES.map(() => startPrivateBus()));
    const watchers = await Promise.all(buses.map((b) => connect(b.address)));
    try {
      for (let run = 0; run < opts.startups; run++) {
        for (const [i, service] of SERVICES.entries()) {
          const { child, ms } = await launch(service, buses[i].address, watchers[i]);
          times[i].push(ms);
          await stop(child);
        }
      }
    } finally {
      for (const w of watchers) w.close();
      for (const b of buses) await b.stop();
    }
    return SERVICES.map((service, i) => {
      const t = [...times[i]].sort((x, y) => x - y);
      return {
        label: service.label,
        sequential: sequential[i].result(),
        concurrent: concurrent[i].result(),
        idle: idle[i],
        rssAfterLoadMiB: rss[i],
        startup: {
          medianMs: percentile(t, 50),
          minMs: t[0],
          maxMs: t[t.length - 1],
          runs: t.length,
        },
      };
    });
  } finally {
    for (const r of running) await tearDown(r);
  }
}

function table(results: Result[], opts: Options): string {
  const f0 = (n: number): string => n.toFixed(0);
  const f1 = (n: number): string => n.toFixed(1);
  const f2 = (n: number): string => n.toFixed(2);
  const rows: [string, (r: Result) => string][] = [
    [
      `quick(16) sequential: calls/s (median of ${opts.rounds})`,
      (r) => f0(r.sequential.callsPerSecond),
    ],
    [
      'quick(16) sequential: p50 / p99 µs',
      (r) => `${f0(r.sequential.p50us)} / ${f0(r.sequential.p99us)}`,
    ],
    [
      `quick(16) ${opts.inFlight} in flight: calls/s (median of ${opts.rounds})`,
      (r) => f0(r.concurrent.callsPerSecond),
    ],
    [
      `quick(16) ${opts.inFlight} in flight: p50 / p99 µs`,
      (r) => `${f0(r.concurrent.p50us)} / ${f0(r.concurrent.p99us)}`,
    ],
    [
      `idle: RSS MiB at 2 s → ${2 + 2 * opts.idleSeconds} s`,
      (r) => `${f1(r.idle[0].rssStartMiB)} → ${f1(r.idle[1].rssEndMiB)}`,
    ],
    ...([0, 1] as const).map((w): [string, (r: Result) => string] => [
      `idle ${2 + w * opts.idleSeconds}–${2 + (w + 1) * opts.idleSeconds} s: CPU ms (%), ctx sw`,
      (r) => `${f0(r.idle[w].cpuMs)} (${f2(r.idle[w].cpuPercent)} %), ${r.idle[w].contextSwitches}`,
    ]),
    ['threads', (r) => String(r.idle[1].threads)],
    ['RSS MiB after the quick runs', (r) => f1(r.rssAfterLoadMiB)],
    [
      'exec → name owned: median ms (min–max)',
      (r) =>
        `${f0(r.startup.medianMs)} (${f0(r.startup.minMs)}–${f0(r.startup.maxMs)}, n=${r.startup.runs})`,
    ],
  ];
  return markdownTable(results, (r) => r.label, rows);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '10000' },
      'concurrent-calls': { type: 'string', default: '40000' },
      rounds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '5000' },
      'in-flight': { type: 'string', default: '16' },
      'idle-seconds': { type: 'string', default: '30' },
      startups: { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
    },
  });
  const opts: Options = {
    calls: Number(values.calls),
    concurrentCalls: Number(values['concurrent-calls']),
    rounds: Number(values.rounds),
    inFlight: Number(values['in-flight']),
    idleSeconds: Number(values['idle-seconds']),
    warmup: Number(values.warmup),
    startups: Number(values.startups),
  };
  const env = environment();
  console.error(`bench/core: ${env}; load average ${loadAverage()}`);
  const results = await measureAll(opts);
  const load = loadAverage();
  if (values.json) {
    console.log(
      JSON.stringify({ environment: env, loadAverage: load, options: opts, results }, null, 2),
    );
  } else {
    console.log(`${new Date().toISOString()}  ${env}; load average at the end ${load}\n`);
    console.log(table(results, opts));
  }
  fs.rmSync(stateRoot, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  fs.rmSync(stateRoot, { recursive: true, force: true });
  process.exit(1);
});
