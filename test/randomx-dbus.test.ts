/**
 * RandomX over D-Bus, light mode, end to end: a real daemon (with the RandomX capability) on a
 * private dbus-daemon, driven by a plain D-Bus client. Answers are checked against HashBatch
 * and Hash through the same bus, and against the official vectors.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { thpMode } from '../src/randomx/hugepages';
import { featureNames, native } from '../src/randomx/native';
import { LIMITS, meetsDifficulty } from '../src/randomx/validate';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { IFACE, TestClient, variant, type SignalLog } from './helpers/client';
import { VECTORS, sleep, withNonce } from './randomx/harness';
import {
  RX_IFACE,
  RX_PATH,
  TASK_IFACE,
  finishedOf,
  processCpuSeconds,
  randomxConfig,
  startRxDaemon,
  taskProp,
  tempDir,
  untilTask,
  waitTask,
  type RxDaemon,
} from './randomx/daemon';

const KEY = Buffer.from('vigil dbus test key');
const BLOB = Buffer.alloc(76, 0x42);
const OFFSET = 39;
const ERR = `${IFACE}Error.`;

let bus: PrivateBus;
let daemon: RxDaemon;
let client: TestClient;
let signals: SignalLog;
let stateDir: string;
let config: string;

type Options = Record<string, ReturnType<typeof variant>>;

const hash = async (key: Buffer, input: Buffer): Promise<Buffer> =>
  (await client.call(RX_PATH, RX_IFACE, 'Hash', 'ayay', [key, input]))[0] as Buffer;
const hashBatch = async (key: Buffer, inputs: Buffer[], options: Options = {}): Promise<string> =>
  (
    await client.call(RX_PATH, RX_IFACE, 'HashBatch', 'ayaaya{sv}', [key, inputs, options])
  )[0] as string;
const search = async (
  blob: Buffer,
  difficulty: bigint,
  options: Options,
  key = KEY,
  offset = OFFSET,
): Promise<string> =>
  (
    await client.call(RX_PATH, RX_IFACE, 'Search', 'ayayuta{sv}', [
      key,
      blob,
      offset,
      difficulty,
      options,
    ])
  )[0] as string;

/** HashBatch over nonces [0, count) of a blob: the independent answer key for searches. */
async function oracle(blob: Buffer, offset: number, count: number): Promise<Buffer[]> {
  const inputs = Array.from({ length: count }, (_, n) => withNonce(blob, offset, n));
  const result = await waitTask(client, await hashBatch(KEY, inputs));
  return result.hashes as Buffer[];
}

function acceptedNonces(hashes: Buffer[], difficulty: bigint): number[] {
  return hashes.flatMap((h, n) => (meetsDifficulty(h, difficulty) ? [n] : []));
}

type Found = Array<[number, Buffer]>;

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { type?: string }).type ?? String(e);
  }
  throw new Error('expected a D-Bus error');
}

beforeAll(async () => {
  bus = await startPrivateBus();
  const dir = tempDir('vigil-rx-');
  stateDir = tempDir('vigil-rx-state-');
  config = randomxConfig(dir, ['threads = 2', 'mode = light']);
  daemon = await startRxDaemon(bus.address, stateDir, config);
  client = await TestClient.connect(bus.address);
  signals = await client.subscribe({ iface: TASK_IFACE });
}, 60000);

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
});

describe('RandomX over D-Bus (light mode)', () => {
  it('Hash gives the official vectors', async () => {
    for (const [key, input, expected] of VECTORS) {
      expect((await hash(Buffer.from(key), Buffer.from(input))).toString('hex')).toBe(expected);
    }
  });

  it('HashBatch gives the official vectors as its task result', async () => {
    const task = await hashBatch(
      Buffer.from(VECTORS[0][0]),
      VECTORS.map(([, input]) => Buffer.from(input)),
      { mode: variant('s', 'light') },
    );
    const result = await waitTask(client, task);
    expect((result.hashes as Buffer[]).map((h) => h.toString('hex'))).toEqual(
      VECTORS.map(([, , h]) => h),
    );
    expect(result.mode).toBe('light');
    expect(await taskProp(client, task, 'Kind')).toBe('randomx-batch');
    expect(await taskProp(client, task, 'Unit')).toBe('hashes');
    expect(await taskProp(client, task, 'Done')).toBe(3n);
  });

  it('shows its properties', async () => {
    const props = await client.getAll(RX_PATH, RX_IFACE);
    expect(props.Mode).toBe('light');
    expect(props.Threads).toBe(2);
    expect(props.DatasetState).toBe('none');
    expect(Buffer.from(props.DatasetKey as Buffer).length).toBe(0);
    const pageKinds = ['large-pages', 'transparent-huge-pages'];
    const features = (props.Features as string[]).filter((f) => !pageKinds.includes(f));
    expect(features).toEqual(featureNames(native().getFlags()));
    expect(props.HugePageCoverage).toBe(0); // no dataset
    expect(typeof props.HashRate).toBe('number');
  });

  it('Search finds exactly the nonces HashBatch says meet the difficulty', async () => {
    const answers = await oracle(BLOB, OFFSET, 40);
    const task = await search(BLOB, 4n, { count: variant('u', 40) });
    const result = await waitTask(client, task);
    const found = result.found as Found;
    expect(found.map(([n]) => n)).toEqual(acceptedNonces(answers, 4n));
    expect(found.length).toBeGreaterThan(0);
    expect(result.next_nonce).toBe(40n);
    for (const [nonce, h] of found) {
      const again = await hash(KEY, withNonce(BLOB, OFFSET, nonce));
      expect(again.equals(h)).toBe(true);
      expect(meetsDifficulty(again, 4n)).toBe(true);
    }
    expect(await taskProp(client, task, 'Phase')).toBe('hashing');
  });

  it('Benchmark reports hashrate, init_seconds, mode and threads', async () => {
    const task = (
      await client.call(RX_PATH, RX_IFACE, 'Benchmark', 'ua{sv}', [
        16,
        { mode: variant('s', 'light'), threads: variant('u', 2) },
      ])
    )[0] as string;
    const result = await waitTask(client, task);
    expect(result.mode).toBe('light');
    expect(result.threads).toBe(2);
    expect(result.nonces).toBe(16);
    expect(result.hashrate as number).toBeGreaterThan(0);
    expect(result.init_seconds as number).toBeGreaterThan(0);
    expect(await client.get(RX_PATH, RX_IFACE, 'HashRate')).toBeGreaterThan(0);
  });

  it('answers bad input with named errors, before any native call', async () => {
    const none: Options = {};
    const cases: Array<[Promise<unknown>, string]> = [
      [hash(Buffer.alloc(0), Buffer.from('x')), 'InvalidArgument'],
      [hash(Buffer.alloc(LIMITS.maxKeyBytes + 1), Buffer.from('x')), 'LimitExceeded'],
      [hash(KEY, Buffer.alloc(LIMITS.maxInputBytes + 1)), 'LimitExceeded'],
      [hashBatch(KEY, []), 'InvalidArgument'],
      [
        hashBatch(
          KEY,
          Array.from({ length: LIMITS.maxBatchInputs + 1 }, () => Buffer.alloc(0)),
        ),
        'LimitExceeded',
      ],
      [
        hashBatch(
          KEY,
          Array.from({ length: 65 }, () => Buffer.alloc(LIMITS.maxInputBytes)),
        ),
        'LimitExceeded',
      ],
      [hashBatch(KEY, [BLOB], { mode: variant('s', 'turbo') }), 'InvalidArgument'],
      [hashBatch(KEY, [BLOB], { threads: variant('u', 0) }), 'InvalidArgument'],
      [hashBatch(KEY, [BLOB], { thread: variant('u', 1) }), 'InvalidArgument'],
      [search(BLOB, 4n, none, KEY, 73), 'InvalidArgument'],
      [search(Buffer.alloc(3), 4n, none, KEY, 0), 'InvalidArgument'],
      [search(BLOB, 0n, none), 'InvalidArgument'],
      [search(Buffer.alloc(LIMITS.maxBlobBytes + 1), 4n, none), 'LimitExceeded'],
      [search(BLOB, 4n, { count: variant('u', 0) }), 'InvalidArgument'],
      [
        search(BLOB, 4n, { start_nonce: variant('u', 0xfffffff0), count: variant('u', 17) }),
        'InvalidArgument',
      ],
      [search(BLOB, 4n, { mode: variant('s', 'heavy') }), 'InvalidArgument'],
      [client.call(RX_PATH, RX_IFACE, 'Benchmark', 'ua{sv}', [0, {}]), 'InvalidArgument'],
      [
        client.call(RX_PATH, RX_IFACE, 'Benchmark', 'ua{sv}', [LIMITS.maxBenchmarkNonces + 1, {}]),
        'LimitExceeded',
      ],
      [
        client.call(RX_PATH, RX_IFACE, 'Benchmark', 'ua{sv}', [10, { threads: variant('u', 0) }]),
        'InvalidArgument',
      ],
    ];
    for (const [call, name] of cases) expect(await errorOf(call)).toBe(ERR + name);
    // Still answering, and still right.
    expect(
      (await hash(Buffer.from(VECTORS[1][0]), Buffer.from(VECTORS[1][1]))).toString('hex'),
    ).toBe(VECTORS[1][2]);
  });

  it('Cancel stops every worker of a search within one second', async () => {
    const task = await search(BLOB, 4n, {});
    await untilTask(client, task, 'Done', (d) => (d as bigint) > 0n);
    const finished = finishedOf(signals, task);
    const t0 = Date.now();
    await client.call(task, TASK_IFACE, 'Cancel');
    const message = await finished;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(message.body[0]).toBe('cancelled');
    const cpu = processCpuSeconds(daemon.pid);
    await sleep(500);
    expect(processCpuSeconds(daemon.pid) - cpu).toBeLessThan(0.25);
  });

  it('Pause frees the CPU and Resume continues from where it stopped', async () => {
    const task = await search(BLOB, 4n, {
      count: variant('u', 60),
      start_nonce: variant('u', 1000),
    });
    await untilTask(client, task, 'Done', (d) => (d as bigint) >= 4n);
    await client.call(task, TASK_IFACE, 'Pause');
    expect(await taskProp(client, task, 'State')).toBe('paused');
    await sleep(300);
    const done = await taskProp(client, task, 'Done');
    const cpu = processCpuSeconds(daemon.pid);
    await sleep(700);
    expect(processCpuSeconds(daemon.pid) - cpu).toBeLessThan(0.25);
    expect(await taskProp(client, task, 'Done')).toBe(done);
    await client.call(task, TASK_IFACE, 'Resume');
    const result = await waitTask(client, task);
    expect(result.hashes).toBe(60n);
    expect(result.next_nonce).toBe(1060n);
  });

  it('Input switches a running search to a new job without restarting it', async () => {
    const other = randomBytes(76);
    const task = await search(BLOB, 2n, { count: variant('u', 30) });
    await untilTask(client, task, 'Done', (d) => (d as bigint) >= 2n);
    expect(
      await errorOf(
        client.call(task, TASK_IFACE, 'Input', 'a{sv}', [{ nonce_offset: variant('u', 73) }]),
      ),
    ).toBe(`${ERR}InvalidArgument`);
    expect(
      await errorOf(client.call(task, TASK_IFACE, 'Input', 'a{sv}', [{ nonce: variant('u', 1) }])),
    ).toBe(`${ERR}InvalidArgument`);
    await client.call(task, TASK_IFACE, 'Input', 'a{sv}', [
      { blob: variant('ay', other), nonce_offset: variant('u', 5), difficulty: variant('t', 3n) },
    ]);
    const result = await waitTask(client, task);
    expect(result.job).toBe(1);
    expect(result.next_nonce).toBe(30n);
    const answers = await oracle(other, 5, 30);
    expect((result.found as Found).map(([n]) => n)).toEqual(acceptedNonces(answers, 3n));
    for (const [nonce, h] of result.found as Found) expect(h.equals(answers[nonce])).toBe(true);
    for (const [job, , h] of result.superseded as Array<[number, number, Buffer]>) {
      expect(job).toBe(0);
      expect(meetsDifficulty(h, 2n)).toBe(true);
    }
  });

  it('resumes a search from its checkpoint under the same id after SIGKILL', async () => {
    const count = 200;
    const task = await search(BLOB, 8n, { count: variant('u', count), threads: variant('u', 1) });
    await untilTask(client, task, 'Done', (d) => (d as bigint) > 0n);
    // Checkpoints come every 2 s; let at least one land well past the start.
    await sleep(3500);
    const doneBeforeKill = Number(await taskProp(client, task, 'Done'));
    expect(doneBeforeKill).toBeLessThan(count);
    await daemon.kill();
    daemon = await startRxDaemon(bus.address, stateDir, config);
    expect(daemon.output()).toMatch(/resuming randomx-search task/);
    const result = await waitTask(client, task);
    expect(result.next_nonce).toBe(BigInt(count));
    // Resumed from the checkpoint, not from nonce 0: far fewer than count + doneBeforeKill.
    expect(Number(result.hashes)).toBeLessThan(count + doneBeforeKill / 3);
    const answers = await oracle(BLOB, OFFSET, count);
    expect((result.found as Found).map(([n]) => n)).toEqual(acceptedNonces(answers, 8n));
  }, 90000);
});

/** Bytes of the process in transparent huge pages. */
function anonHugeBytes(pid: number): number {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^AnonHugePages:\s+(\d+) kB/m.exec(rollup)?.[1]) * 1024;
}

describe('huge pages with none reserved (light mode)', () => {
  let offBus: PrivateBus;
  let off: RxDaemon;
  let offClient: TestClient;

  beforeAll(async () => {
    offBus = await startPrivateBus();
    const noPages = randomxConfig(tempDir('vigil-rx-nopages-'), [
      'threads = 1',
      'large_pages = no',
    ]);
    off = await startRxDaemon(offBus.address, tempDir('vigil-rx-nopages-state-'), noPages);
    offClient = await TestClient.connect(offBus.address);
  }, 60000);

  afterAll(async () => {
    offClient?.close();
    await off?.stop();
    await offBus?.stop();
  });

  it('back the cache with transparent huge pages, unless large_pages = no', async () => {
    const [key, input, expected] = VECTORS[1];
    for (const c of [client, offClient]) {
      const [h] = (await c.call(RX_PATH, RX_IFACE, 'Hash', 'ayay', [
        Buffer.from(key),
        Buffer.from(input),
      ])) as Buffer[];
      expect(h.toString('hex')).toBe(expected);
    }
    const offFeatures = (await offClient.get(RX_PATH, RX_IFACE, 'Features')) as string[];
    expect(offFeatures).not.toContain('transparent-huge-pages');
    expect(offFeatures).not.toContain('large-pages');
    // Only the 256 MiB cache and the 2 MiB scratchpads could be huge: none are.
    expect(anonHugeBytes(off.pid)).toBeLessThan(16 * 2 ** 20);
    const features = (await client.get(RX_PATH, RX_IFACE, 'Features')) as string[];
    if (thpMode() !== 'never' && !features.includes('large-pages')) {
      expect(features).toContain('transparent-huge-pages');
      // Most of the cache: the kernel may fail a few huge pages on fragmented memory.
      expect(anonHugeBytes(daemon.pid)).toBeGreaterThan(128 * 2 ** 20);
    }
  });
});

describe('fast mode without the memory for its dataset', () => {
  let smallBus: PrivateBus;
  let small: RxDaemon;
  let smallClient: TestClient;

  beforeAll(async () => {
    smallBus = await startPrivateBus();
    // Enough address space for the daemon and a light cache, not for a 2080 MiB dataset.
    small = await startRxDaemon(smallBus.address, tempDir('vigil-rx-small-'), config, [
      'prlimit',
      '--as=4300000000',
    ]);
    smallClient = await TestClient.connect(smallBus.address);
  }, 60000);

  afterAll(async () => {
    smallClient?.close();
    await small?.stop();
    await smallBus?.stop();
  });

  it('fails the task with a clear Failed and keeps the daemon running', async () => {
    const [task] = (await smallClient.call(RX_PATH, RX_IFACE, 'HashBatch', 'ayaaya{sv}', [
      KEY,
      [BLOB],
      { mode: variant('s', 'fast') },
    ])) as string[];
    const error = await errorOf(smallClient.call(task, TASK_IFACE, 'Wait'));
    expect(error).toBe(`${ERR}Failed`);
    expect(await smallClient.get(task, TASK_IFACE, 'ErrorMessage')).toMatch(/dataset|memory/);
    expect(await smallClient.get(RX_PATH, RX_IFACE, 'DatasetState')).toBe('none');
    const [h] = (await smallClient.call(RX_PATH, RX_IFACE, 'Hash', 'ayay', [
      Buffer.from(VECTORS[2][0]),
      Buffer.from(VECTORS[2][1]),
    ])) as Buffer[];
    expect(h.toString('hex')).toBe(VECTORS[2][2]);
  });
});
