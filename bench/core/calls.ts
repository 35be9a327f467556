import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startPrivateBus, type PrivateBus } from '../../test/helpers/bus';
import {
  BENCH_SOURCE,
  CLK_TCK,
  connect,
  cpuTicks,
  environment,
  launch,
  loadAverage,
  markdownTable,
  percentile,
  PYTHON,
  pythonService,
  sdbusService,
  type Service,
  stateRoot,
  stop,
  vigildService,
} from './common';

/**
 * The cost of one call (issue 10, item 10), driven by a client no one here wrote: the
 * tutorial's dbus-python stack (quick_client.py, one process, sequential quick(16)). Side by
 * side, each alone on its own private bus: vigild as shipped, the tutorial's dbus-python
 * service, and a C sd-bus service as the limit. Rounds are interleaved (A, B, C, A, B, C, ...)
 * so that a burst of load from elsewhere hits every service alike. A service's CPU per call is
 * its utime + stime from /proc/PID/stat across the round, divided by the calls.
 *
 *   bench/core/calls [--calls N] [--rounds N] [--warmup N] [--cpu-prof DIR] [--json]
 */

interface Round {
  seconds: number;
  latencies: number[];
  cpuTicks: number;
}

interface Result {
  label: string;
  callsPerSecond: number;
  p50us: number;
  p99us: number;
  cpuUsPerCall: number;
  cpuUsPerCallRounds: number[];
}

/** Run quick_client.py against `address`: `count` sequential calls. */
function pythonClient(
  address: string,
  count: number,
): Promise<{ seconds: number; latencies: number[] }> {
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      [path.join(BENCH_SOURCE, 'quick_client.py'), address, String(count)],
      { maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`quick_client.py failed: ${stderr || error.message}`));
          return;
        }
        const out = JSON.parse(stdout) as { seconds: number; latencies_us: number[] };
        resolve({ seconds: out.seconds, latencies: out.latencies_us });
      },
    );
  });
}

async function measure(
  services: Service[],
  opts: { calls: number; rounds: number; warmup: number },
): Promise<Result[]> {
  const buses: PrivateBus[] = [];
  const children: Awaited<ReturnType<typeof launch>>['child'][] = [];
  try {
    for (const service of services) {
      const bus = await startPrivateBus();
      buses.push(bus);
      const watcher = await connect(bus.address);
      children.push((await launch(service, bus.address, watcher)).child);
      watcher.close();
    }
    for (const bus of buses) await pythonClient(bus.address, opts.warmup);
    const rounds: Round[][] = services.map(() => []);
    for (let r = 0; r < opts.rounds; r++) {
      for (const [i, bus] of buses.entries()) {
        const pid = children[i].pid as number;
        const before = cpuTicks(pid);
        const run = await pythonClient(bus.address, opts.calls);
        rounds[i].push({ ...run, cpuTicks: cpuTicks(pid) - before });
      }
    }
    return services.map((service, i) => {
      const rs = rounds[i];
      const rates = rs.map((r) => r.latencies.length / r.seconds).sort((a, b) => a - b);
      const latencies = rs.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const perCall = (ticks: number, calls: number): number => (ticks / CLK_TCK / calls) * 1e6;
      const ticks = rs.reduce((sum, r) => sum + r.cpuTicks, 0);
      return {
        label: service.label,
        callsPerSecond: percentile(rates, 50),
        p50us: percentile(latencies, 50),
        p99us: percentile(latencies, 99),
        cpuUsPerCall: perCall(ticks, latencies.length),
        cpuUsPerCallRounds: rs.map((r) => perCall(r.cpuTicks, r.latencies.length)),
      };
    });
  } finally {
    for (const child of children) await stop(child);
    for (const bus of buses) await bus.stop();
  }
}

function table(results: Result[], rounds: number): string {
  const python = results.find((r) => r.label === 'dbus-python');
  const ratio = (r: Result, f: (x: Result) => number): string =>
    python ? ` (${(f(r) / f(python)).toFixed(2)}×)` : '';
  return markdownTable(results, (r) => r.label, [
    [
      `calls/s (median of ${rounds} rounds)`,
      (r) => `${r.callsPerSecond.toFixed(0)}${ratio(r, (x) => x.callsPerSecond)}`,
    ],
    ['p50 / p99 µs', (r) => `${r.p50us.toFixed(0)} / ${r.p99us.toFixed(0)}`],
    [
      'service CPU µs per call',
      (r) => `${r.cpuUsPerCall.toFixed(1)}${ratio(r, (x) => x.cpuUsPerCall)}`,
    ],
    ['  per round', (r) => r.cpuUsPerCallRounds.map((c) => c.toFixed(0)).join(', ')],
  ]);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '5000' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '5000' },
      'cpu-prof': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const opts = {
    calls: Number(values.calls),
    rounds: Number(values.rounds),
    warmup: Number(values.warmup),
  };
  const profile = values['cpu-prof'];
  const nodeArgs = (process.env.VIGILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
  if (profile) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profile}`);
  const vigild = vigildService(nodeArgs);
  const env = environment();
  console.error(`bench/core/calls: ${env}; load average ${loadAverage()}`);
  const results = await measure([vigild, pythonService, sdbusService()], opts);
  const load = loadAverage();
  if (values.json) {
    console.log(JSON.stringify({ environment: env, loadAverage: load, options: opts, results }));
  } else {
    console.log(`${new Date().toISOString()}  ${env}; load average at the end ${load}\n`);
    console.log(
      `dbus-python client (quick_client.py), sequential quick(16), ${opts.calls} calls per round\n`,
    );
    console.log(table(results, opts.rounds));
  }
  fs.rmSync(stateRoot, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  fs.rmSync(stateRoot, { recursive: true, force: true });
  process.exit(1);
});
