import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type BusConnection } from '../../src/bus/connection';
import { DBusError } from '../../src/bus/wire/connection';
import { MessageFramer } from '../../src/bus/wire/framing';
import { marshalBody, WireWriter } from '../../src/bus/wire/marshal';
import { encodeMessage, METHOD_CALL } from '../../src/bus/wire/message';
import { parseSignature } from '../../src/bus/wire/signature';
import { BodyDecoder } from '../../src/bus/wire/unmarshal';
import { startPrivateBus } from '../../test/helpers/bus';
import {
  BENCH_SOURCE,
  connect,
  environment,
  launch,
  loadAverage,
  NAME,
  percentile,
  PYTHON,
  RD,
  RD_IFACE,
  pythonService,
  sdbusService,
  type Service,
  stateRoot,
  stop,
  vigildService,
} from './common';

/**
 * What one hostile or heavy caller costs everyone else (issue 12): while a dbus-python client
 * calls quick(16) in a loop, another client sends
 *   1. a 33 MB body of the wrong signature (aay to quick), refused from its header;
 *   2. a legitimate 4 MiB HashBatch of 65536 inputs, decoded in slices (as root).
 * For each: the time until the answer, and the quick calls' p50/p99 while it was in the air
 * against those outside. Also the decoder alone on that HashBatch body: slices and the longest.
 *
 *   bench/core/hostile [--repeat N] [--json]
 */

interface Window {
  startNs: bigint;
  endNs: bigint;
}

interface Case {
  name: string;
  answerMs: number[];
  answer: string;
  during: { calls: number; p50us: number; p99us: number; maxUs: number };
}

function stats(latencies: number[]): {
  calls: number;
  p50us: number;
  p99us: number;
  maxUs: number;
} {
  const l = [...latencies].sort((a, b) => a - b);
  return {
    calls: l.length,
    p50us: percentile(l, 50),
    p99us: percentile(l, 99),
    maxUs: l[l.length - 1] ?? 0,
  };
}

/** quick_client.py in the background; resolves with each call's start and latency. */
function backgroundClient(address: string, count: number) {
  const child = spawn(
    PYTHON,
    [path.join(BENCH_SOURCE, 'quick_client.py'), address, String(count), '--starts'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve) => child.stderr.once('data', () => resolve()));
  const done = new Promise<{ starts: bigint[]; latencies: number[]; errors: number }>(
    (resolve, reject) =>
      child.once('close', (code) => {
        if (code !== 0) return reject(new Error(`quick_client.py exited ${code}`));
        const parsed = JSON.parse(out) as {
          latencies_us: number[];
          starts_ns: number[];
          errors: Record<string, number>;
        };
        resolve({
          starts: parsed.starts_ns.map((n) => BigInt(n)),
          latencies: parsed.latencies_us,
          errors: Object.values(parsed.errors).reduce((a, b) => a + b, 0),
        });
      }),
  );
  done.catch(() => undefined); // reported by finish()
  /** End the loop (SIGINT) and resolve with what it measured. */
  const finish = (): typeof done => {
    child.kill('SIGINT');
    return done;
  };
  return { ready, finish };
}

async function timed(windows: Window[], f: () => Promise<string>): Promise<[number, string]> {
  const startNs = process.hrtime.bigint();
  const answer = await f();
  const endNs = process.hrtime.bigint();
  windows.push({ startNs, endNs });
  return [Number(endNs - startNs) / 1e6, answer];
}

function errorName(e: unknown): string {
  return e instanceof DBusError ? e.type : String(e);
}

/** Send `repeat` times, recording the windows; resolves with the times and the answer. */
async function repeated(
  repeat: number,
  windows: Window[],
  send: () => Promise<string>,
): Promise<{ answerMs: number[]; answer: string }> {
  const answerMs: number[] = [];
  let answer = '';
  for (let i = 0; i < repeat; i++) {
    const [ms, a] = await timed(windows, send);
    answerMs.push(ms);
    answer = a;
    await new Promise((r) => setTimeout(r, 300));
  }
  return { answerMs, answer };
}

const WRONG = '33 MB aay to quick';
const BATCH = '4 MiB HashBatch (65536 inputs)';

/** The cases one service gets: the wrong-signature body always, the HashBatch for vigild. */
async function hostileCases(
  client: BusConnection,
  repeat: number,
  withBatch: boolean,
  windows: Map<string, Window[]>,
): Promise<Omit<Case, 'during'>[]> {
  const big = Array.from({ length: 33 }, () => Buffer.alloc(1000 * 1000, 0x5a));
  windows.set(WRONG, []);
  const results: Omit<Case, 'during'>[] = [];
  const wrong = await repeated(repeat, windows.get(WRONG) as Window[], () =>
    client
      .call(
        {
          destination: NAME,
          path: RD,
          interface: RD_IFACE,
          member: 'quick',
          signature: 'aay',
          body: [big],
        },
        { timeoutMs: 120000 },
      )
      .then(() => 'return', errorName),
  );
  results.push({ name: WRONG, ...wrong });
  if (!withBatch) return results;
  const inputs = Array.from({ length: 65536 }, (_, i) => Buffer.alloc(64, i & 0xff));
  windows.set(BATCH, []);
  const batch = await repeated(repeat, windows.get(BATCH) as Window[], async () => {
    try {
      const reply = await client.call({
        destination: NAME,
        path: '/org/vigil/Vigil1/RandomX',
        interface: 'org.vigil.Vigil1.RandomX',
        member: 'HashBatch',
        signature: 'ayaaya{sv}',
        body: [Buffer.from('bench key'), inputs, {}],
      });
      const task = String(reply.body[0]);
      await client
        .call({
          destination: NAME,
          path: task,
          interface: 'org.vigil.Vigil1.Task',
          member: 'Cancel',
        })
        .catch(() => undefined);
      return 'a task';
    } catch (e) {
      return errorName(e);
    }
  });
  results.push({ name: BATCH, ...batch });
  return results;
}

interface ServiceRun {
  label: string;
  cases: Case[];
  outside: ReturnType<typeof stats>;
  /** quick(16) calls of the background client that failed (timed out) in the whole run. */
  failedCalls: number;
}

/** One service alone on its bus, with the background client and the hostile one. */
async function runService(
  service: Service,
  repeat: number,
  withBatch: boolean,
): Promise<ServiceRun> {
  const bus = await startPrivateBus();
  const watcher = await connect(bus.address);
  const { child } = await launch(service, bus.address, watcher);
  const client = await connect(bus.address);
  const windows = new Map<string, Window[]>();
  try {
    const background = backgroundClient(bus.address, 10000000);
    await background.ready;
    await new Promise((r) => setTimeout(r, 1000));
    const answered = await hostileCases(client, repeat, withBatch, windows);
    await new Promise((r) => setTimeout(r, 1000));
    const { starts, latencies, errors } = await background.finish();
    const inside = (w: Window[], t: bigint): boolean =>
      w.some((x) => t >= x.startNs && t <= x.endNs);
    const cases = answered.map((c) => {
      const w = windows.get(c.name) ?? [];
      return { ...c, during: stats(latencies.filter((_, i) => inside(w, starts[i]))) };
    });
    const outside = stats(
      latencies.filter((_, i) => ![...windows.values()].some((w) => inside(w, starts[i]))),
    );
    return { label: service.label, cases, outside, failedCalls: errors };
  } finally {
    client.close();
    watcher.close();
    await stop(child);
    await bus.stop();
  }
}

/** The decoder alone on the HashBatch body, with the slice length the connection uses. */
function decoderSlices(): { totalMs: number; slices: number; longestMs: number } {
  const w = new WireWriter();
  const inputs = Array.from({ length: 65536 }, (_, i) => Buffer.alloc(64, i & 0xff));
  marshalBody(w, 'ayaaya{sv}', [Buffer.from('bench key'), inputs, {}]);
  const bytes = Buffer.from(w.result());
  let best = { totalMs: Infinity, slices: 0, longestMs: 0 };
  for (let run = 0; run < 5; run++) {
    const d = new BodyDecoder(bytes, true, parseSignature('ayaaya{sv}'));
    const t0 = performance.now();
    let slices = 0;
    let longest = 0;
    for (;;) {
      const s0 = performance.now();
      const done = d.run(s0 + 2);
      slices++;
      longest = Math.max(longest, performance.now() - s0);
      if (done) break;
    }
    const total = performance.now() - t0;
    if (total < best.totalMs) best = { totalMs: total, slices, longestMs: longest };
  }
  return best;
}

/**
 * vigild's own part of refusing the 33 MB body, without the bus: the message fed to the framer
 * in 64 KiB chunks as a socket delivers it; the time until the header's verdict, and the CPU
 * to let the rest stream past.
 */
function refusalInProcess(): { verdictUs: number; skipMs: number } {
  const big = Array.from({ length: 33 }, () => Buffer.alloc(1000 * 1000, 0x5a));
  const bytes = encodeMessage(
    {
      type: METHOD_CALL,
      path: RD,
      interface: RD_IFACE,
      member: 'quick',
      destination: NAME,
      signature: 'aay',
      body: [big],
    },
    1,
  );
  let best = { verdictUs: Infinity, skipMs: Infinity };
  for (let run = 0; run < 5; run++) {
    let verdictAt = 0;
    const framer = new MessageFramer<true>({
      header: () => {
        verdictAt = performance.now();
        return undefined; // refused: the body is skipped
      },
      message: () => undefined,
    });
    const t0 = performance.now();
    framer.push(bytes.subarray(0, 65536));
    const verdictUs = (verdictAt - t0) * 1000;
    const s0 = performance.now();
    for (let at = 65536; at < bytes.length; at += 65536) {
      framer.push(bytes.subarray(at, at + 65536));
    }
    const skipMs = performance.now() - s0;
    if (skipMs < best.skipMs) best = { verdictUs, skipMs };
  }
  return best;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      repeat: { type: 'string', default: '5' },
      json: { type: 'boolean', default: false },
    },
  });
  const repeat = Number(values.repeat);
  const env = environment();
  console.error(`bench/core/hostile: ${env}; load average ${loadAverage()}`);
  try {
    const runs = [
      await runService(vigildService(), repeat, true),
      // The references read and decode the whole body first: once is enough to see it.
      await runService(pythonService, 1, false),
      await runService(sdbusService(), 1, false),
    ];
    const decoder = decoderSlices();
    const refusal = refusalInProcess();
    const load = loadAverage();
    if (values.json) {
      console.log(JSON.stringify({ environment: env, loadAverage: load, runs, decoder, refusal }));
      return;
    }
    console.log(`${new Date().toISOString()}  ${env}; load average at the end ${load}\n`);
    const f = (n: number): string => n.toFixed(n < 10 ? 1 : 0);
    const q = (d: ReturnType<typeof stats>): string =>
      `${d.calls}: ${f(d.p50us)} / ${f(d.p99us)} / ${f(d.maxUs)}`;
    console.log(
      '| service | another client sends | answer | answered in ms | dbus-python quick(16) meanwhile: calls: p50 / p99 / max µs |',
    );
    console.log('|---|---|---|---|---|');
    for (const run of runs) {
      for (const c of run.cases) {
        console.log(
          `| ${run.label} | ${c.name} | ${c.answer} | ${c.answerMs.map(f).join(', ')} | ${q(c.during)} |`,
        );
      }
      const failed = run.failedCalls > 0 ? ` (${run.failedCalls} calls failed: no reply)` : '';
      console.log(`| ${run.label} | (nothing) | | | ${q(run.outside)}${failed} |`);
    }
    console.log(
      `\nthe decoder alone on that HashBatch body (2 ms slices): ${f(decoder.totalMs)} ms in ` +
        `${decoder.slices} slices, the longest ${f(decoder.longestMs)} ms`,
    );
    console.log(
      `vigild's own refusal of the 33 MB body, in process: the verdict ${f(refusal.verdictUs)} µs ` +
        `after the first 64 KiB chunk, the rest skipped in ${f(refusal.skipMs)} ms`,
    );
  } finally {
    fs.rmSync(stateRoot, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
