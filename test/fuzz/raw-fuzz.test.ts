/**
 * The raw wire fuzz (issue 12): 10,000 messages built byte by byte by `raw-fuzzer.ts`, run as
 * an unprivileged user in its own process, against every member of every object of vigild.
 * Each message is answered with a return or a named error (or, for one the bus itself cannot
 * parse, by the bus dropping that sender's connection); `quick` answers after every batch; the
 * daemon logs no internal error and its memory is back within 20 % after a pause.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { IFACE, ROOT } from '../helpers/client';
import { multiuserBusConfigWith, useDaemon } from '../helpers/fixture';
import { GC_ON_SIGNAL_OPTIONS, settledMemoryAfterGc } from '../helpers/gc-on-signal';

const SEED = Number(process.env.RAW_FUZZ_SEED ?? 20261202);
const COUNT = Number(process.env.RAW_FUZZ_COUNT ?? 10000);
/** Under the bus's 128 pending replies per connection. */
const BATCH = 100;
/** Not root, so the privileged members (hashing, wake packets) refuse before doing anything. */
const FUZZ_UID = 65534;

// Room for the 64 MiB bodies: a stock system bus stops at 32 MiB and drops whoever sends more.
const fx = useDaemon({
  busConfig: multiuserBusConfigWith({
    max_message_size: 2 ** 27,
    max_incoming_bytes: 2 ** 28,
  }),
  args: ['--slow-pace-ms', '50'],
  env: { NODE_OPTIONS: GC_ON_SIGNAL_OPTIONS },
});

interface Totals {
  done: true;
  sent: number;
  targets: number;
  outcomes: Record<string, number>;
  kinds: Record<string, number>;
  failures: string[];
}

const run = promisify(execFile);

const settledMemory = (pid: number): Promise<{ rss: number; heap: number }> =>
  settledMemoryAfterGc(pid, () => fx.daemon.output());

/** Lines where the daemon logged an error (a handler that threw something unnamed, ...). */
function internalErrors(): string[] {
  return fx.daemon
    .output()
    .split('\n')
    .filter((l) => /^\S+ (error|crit|alert|emerg):|unhandled|uncaught|^dbus: error/i.test(l));
}

/** Run the fuzzer as FUZZ_UID; returns its batch lines and its last line. */
async function fuzz(seed: number, count: number): Promise<{ batches: number; totals: unknown }> {
  const fuzzer = path.join(__dirname, 'raw-fuzzer.js');
  const { stdout } = await run(
    process.execPath,
    [fuzzer, fx.bus.address, String(seed), String(count), String(BATCH)],
    { uid: FUZZ_UID, gid: FUZZ_UID, maxBuffer: 16 * 1024 * 1024 },
  ).catch((e: { stdout?: string; message: string }) => ({ stdout: e.stdout ?? e.message }));
  const lines = stdout.trim().split('\n');
  const totals = JSON.parse(lines[lines.length - 1]) as unknown;
  process.stdout.write(`raw fuzz seed ${seed}: ${JSON.stringify(totals)}\n`);
  return { batches: lines.filter((l) => l.startsWith('{"batch"')).length, totals };
}

test(`${COUNT} raw messages at every member: all answered, quick after each batch, memory back`, async () => {
  const pid = fx.daemon.child.pid as number;
  // A first, shorter run (its big bodies included) warms the heap, the allocator and the
  // caches up; memory is measured against the daemon after it, so what is compared is what
  // the 10,000 messages leave behind.
  const warmUp = await fuzz(SEED + 1, 2000);
  expect(warmUp.totals).toMatchObject({ done: true, failures: [] });
  const before = await settledMemory(pid);

  const { batches, totals } = await fuzz(SEED, COUNT);
  expect(totals).toMatchObject({ done: true, failures: [] });
  const t = totals as Totals;
  expect(t.sent).toBe(COUNT);
  // Every batch ended with an answered quick (the fuzzer stops at the first that is not).
  expect(batches).toBe(Math.ceil(COUNT / BATCH));
  // Every kind of message went out, the streamed big bodies included, and reached handlers.
  for (const kind of [
    'own signature',
    'random signature',
    'fd count disagrees',
    'nesting at the limit',
    'nesting past the limit',
    'flipped bytes',
    'cut short',
    'inconsistent body',
    'unknown header field',
    'made-up member',
    'size sweep',
    'streamed 4 MiB',
    'streamed 64 MiB',
  ]) {
    expect(t.kinds[kind] ?? 0).toBeGreaterThan(0);
  }
  expect(t.outcomes.return ?? 0).toBeGreaterThan(COUNT / 20);
  expect(t.outcomes['org.freedesktop.DBus.Error.InvalidArgs'] ?? 0).toBeGreaterThan(COUNT / 20);
  expect(t.targets).toBeGreaterThan(30);

  expect(fx.daemon.child.exitCode).toBeNull();
  const [s] = (await fx.client.call(
    `${ROOT}/RandomData`,
    `${IFACE}RandomData`,
    'quick',
    'i',
    [16],
  )) as [string];
  expect(Number(s)).toBeLessThan(65536);
  expect(internalErrors()).toEqual([]);

  // The fuzzer's connections are gone; after a pause the memory is what it was.
  await new Promise((r) => setTimeout(r, 1000));
  const after = await settledMemory(pid);
  process.stdout.write(`memory before and after: ${JSON.stringify([before, after])}\n`);
  expect(after.rss).toBeLessThan(before.rss * 1.2);
}, 300_000);
