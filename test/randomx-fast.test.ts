/**
 * Fast mode end to end, with every 2080 MiB dataset build of the suite in this one file
 * (each costs 20-40 s of both cores): the dataset as its own phase in transparent huge pages,
 * the dataset cache across restarts (loads, corrupt files, limits, a full disk) and key
 * switches prepared in the background. Cases share builds wherever the checks allow.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Message } from '../src/bus/wire/message';
import {
  HEADER_BYTES,
  datasetFileName,
  decodeHeader,
  encodeHeader,
  sha256,
} from '../src/randomx/dataset-file';
import { thpMode } from '../src/randomx/hugepages';
import { DATASET_ITEM_SIZE, native } from '../src/randomx/native';
import { meetsDifficulty } from '../src/randomx/validate';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { TestClient, plain, variant, type SignalLog } from './helpers/client';
import { VECTORS, sleep, withNonce } from './randomx/harness';
import {
  RX_IFACE,
  RX_PATH,
  TASK_IFACE,
  randomxConfig,
  startRxDaemon,
  tempDir,
  untilTask,
  waitTask,
  type RxDaemon,
} from './randomx/daemon';

const KEY = Buffer.from(VECTORS[0][0]);
const VECTOR_INPUTS = VECTORS.map(([, input]) => Buffer.from(input));
const VECTOR_HASHES = VECTORS.map(([, , h]) => h);
const BUILD_MS = 240000;

type Options = Record<string, ReturnType<typeof variant>>;

let bus: PrivateBus;
let client: TestClient;
let changes: SignalLog;
let progress: SignalLog;

beforeAll(async () => {
  bus = await startPrivateBus();
  client = await TestClient.connect(bus.address);
  changes = await client.subscribe({ member: 'PropertiesChanged' });
  progress = await client.subscribe({ iface: TASK_IFACE, member: 'Progress' });
}, 60000);

afterAll(async () => {
  client?.close();
  await bus?.stop();
});

const changed = (m: Message, objectPath: string, prop: string, value: unknown): boolean =>
  m.path === objectPath && (plain(m.body[1]) as Record<string, unknown>)[prop] === value;

const phases = (task: string, phase: string): number =>
  changes.count((m) => changed(m, task, 'Phase', phase));

async function hashBatch(key: Buffer, inputs: Buffer[], options: Options): Promise<string> {
  const [task] = (await client.call(RX_PATH, RX_IFACE, 'HashBatch', 'ayaaya{sv}', [
    key,
    inputs,
    options,
  ])) as string[];
  return task;
}

/** A fast HashBatch of the official vectors under KEY; its result, the vectors checked. */
async function fastVectors(): Promise<Record<string, unknown> & { task: string }> {
  const task = await hashBatch(KEY, VECTOR_INPUTS, { mode: variant('s', 'fast') });
  const result = await waitTask(client, task);
  expect((result.hashes as Buffer[]).map((h) => h.toString('hex'))).toEqual(VECTOR_HASHES);
  expect(result.mode).toBe('fast');
  return { ...result, task };
}

/** Light-mode hashes of `inputs` under `key`: the independent check of fast answers. */
async function lightHashes(key: Buffer, inputs: Buffer[]): Promise<Buffer[]> {
  const task = await hashBatch(key, inputs, { mode: variant('s', 'light') });
  return (await waitTask(client, task)).hashes as Buffer[];
}

async function untilLogged(daemon: RxDaemon, pattern: RegExp, timeoutMs = BUILD_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(daemon.output())) {
    if (Date.now() > deadline) throw new Error(`no log line ${pattern}:\n${daemon.output()}`);
    await sleep(100);
  }
}

function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
}

async function untilRss(
  pid: number,
  pred: (rss: number) => boolean,
  what: string,
): Promise<number> {
  const deadline = Date.now() + 60000;
  for (;;) {
    const rss = rssBytes(pid);
    if (pred(rss)) return rss;
    if (Date.now() > deadline) throw new Error(`RSS stayed ${rss} bytes, ${what}`);
    await sleep(100);
  }
}

const cancel = (task: string) => client.call(task, TASK_IFACE, 'Cancel');

const datasetBytes = (): number => native().datasetItemCount() * DATASET_ITEM_SIZE;

describe('fast mode with the dataset cache', () => {
  const cacheDir = tempDir('vigil-rx-fast-cache-');
  const stateDir = tempDir('vigil-rx-fast-state-');
  const config = randomxConfig(tempDir('vigil-rx-fast-'), ['threads = 2']);
  const cached = path.join(cacheDir, datasetFileName(KEY));
  /** A second name for a good file, outside the cache directory (same filesystem). */
  const backup = path.join(tempDir('vigil-rx-fast-backup-'), 'dataset');
  let daemon: RxDaemon;

  const restart = async (): Promise<void> => {
    await daemon.stop();
    daemon = await startRxDaemon(bus.address, stateDir, config, [], cacheDir);
  };

  beforeAll(async () => {
    daemon = await startRxDaemon(bus.address, stateDir, config, [], cacheDir);
  }, 60000);

  afterAll(async () => {
    await daemon?.stop();
    fs.rmSync(cacheDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(backup), { recursive: true, force: true });
  });

  const randomInputs = Array.from({ length: 4 }, (_, i) => randomBytes(8 + i * 40));
  let fastHashes: Buffer[];

  it(
    'builds the dataset as its own phase, in huge pages, then gives the vectors',
    async () => {
      const task = await hashBatch(KEY, [...VECTOR_INPUTS, ...randomInputs], {
        mode: variant('s', 'fast'),
      });
      const result = await waitTask(client, task);
      fastHashes = result.hashes as Buffer[];
      expect(fastHashes.slice(0, 3).map((h) => h.toString('hex'))).toEqual(VECTOR_HASHES);
      expect(result.mode).toBe('fast');
      expect(result.dataset_source).toBe('built');

      // The dataset phase came first, with progress over the dataset items, then hashing.
      const items = BigInt(native().datasetItemCount());
      expect(phases(task, 'dataset')).toBe(1);
      expect(phases(task, 'hashing')).toBe(1);
      const datasetProgress = progress.messages.filter(
        (m) => m.path === task && m.body[2] === items && (m.body[1] as bigint) > 0n,
      );
      expect(datasetProgress.length).toBeGreaterThan(1);
      // Building the dataset fills the first half of Progress, hashing the rest.
      const datasetShare = Math.max(...datasetProgress.map((m) => m.body[0] as number));
      expect(datasetShare).toBeGreaterThan(0);
      expect(datasetShare).toBeLessThanOrEqual(0.5);
      expect(changes.count((m) => changed(m, RX_PATH, 'DatasetState', 'initializing'))).toBe(1);
      expect(changes.count((m) => changed(m, RX_PATH, 'DatasetState', 'ready'))).toBe(1);

      const props = await client.getAll(RX_PATH, RX_IFACE);
      expect(props.DatasetState).toBe('ready');
      expect(Buffer.from(props.DatasetKey as Buffer).equals(KEY)).toBe(true);
      expect(props.Features).toContain('full-mem');
      // Nothing reserved (the reserved path is the engine test's): the dataset sits in
      // transparent huge pages, asked for before the build.
      if (!(props.Features as string[]).includes('large-pages') && thpMode() !== 'never') {
        expect(props.HugePageCoverage as number).toBeGreaterThan(0.9);
        expect(props.Features).toContain('transparent-huge-pages');
      }
    },
    BUILD_MS,
  );

  it('gives the vectors through Hash on the ready dataset', async () => {
    for (const [key, input, expected] of VECTORS) {
      const [h] = (await client.call(RX_PATH, RX_IFACE, 'Hash', 'ayay', [
        Buffer.from(key),
        Buffer.from(input),
      ])) as Buffer[];
      expect(h.toString('hex')).toBe(expected);
    }
  });

  it('agrees with light mode on random inputs', async () => {
    expect(await lightHashes(KEY, randomInputs)).toEqual(fastHashes.slice(3));
  });

  it('searches on the same dataset without rebuilding it, answers checked in light mode', async () => {
    const blob = randomBytes(76);
    const [task] = (await client.call(RX_PATH, RX_IFACE, 'Search', 'ayayuta{sv}', [
      KEY,
      blob,
      39,
      4n,
      { mode: variant('s', 'fast'), count: variant('u', 200) },
    ])) as string[];
    const result = await waitTask(client, task);
    expect(phases(task, 'dataset')).toBe(0);
    expect(result.dataset_source).toBe('built');
    const light = await lightHashes(
      KEY,
      Array.from({ length: 200 }, (_, n) => withNonce(blob, 39, n)),
    );
    const expected = light.flatMap((h, n) => (meetsDifficulty(h, 4n) ? [n] : []));
    const found = result.found as Array<[number, Buffer]>;
    expect(found.map(([n]) => n)).toEqual(expected);
    for (const [n, h] of found) expect(h.equals(light[n])).toBe(true);
  }, 120000);

  it(
    'writes the built dataset to the cache directory, atomically and in the background',
    async () => {
      await untilLogged(daemon, /dataset cache: saved /);
      expect(fs.readdirSync(cacheDir)).toEqual([datasetFileName(KEY)]);
      expect(fs.statSync(cached).size).toBe(HEADER_BYTES + datasetBytes());
      // Written by direct I/O where the filesystem takes it (tmpfs keeps the page cache path):
      // the 2 GiB are not left in the page cache, pushing other files out.
      const fsType = execFileSync('stat', ['-f', '-c', '%T', cacheDir]).toString().trim();
      if (fsType !== 'tmpfs') {
        expect(daemon.output()).toMatch(/dataset cache: saved \S+ in [\d.]+ s \(direct I\/O/);
        const resident = execFileSync('fincore', ['-bn', '-o', 'RES', cached]).toString();
        expect(Number(resident.trim())).toBeLessThan(datasetBytes() / 100);
      }
    },
    BUILD_MS,
  );

  it(
    'loads it after a restart as phase dataset, with progress, and the vectors hold',
    async () => {
      await restart();
      const result = await fastVectors();
      expect(result.dataset_source).toBe('cache');
      expect(daemon.output()).toMatch(
        /dataset cache: loaded .*; (direct I\/O|through the page cache)\)$/m,
      );
      expect(phases(result.task, 'dataset')).toBe(1);
      const loading = progress.messages.filter(
        (m) => m.path === result.task && (m.body[1] as bigint) > 0n,
      );
      expect(loading.length).toBeGreaterThan(0);
      const bench = (
        await client.call(RX_PATH, RX_IFACE, 'Benchmark', 'ua{sv}', [
          50,
          { mode: variant('s', 'fast'), key: variant('ay', KEY) },
        ])
      )[0] as string;
      expect((await waitTask(client, bench)).dataset_source).toBe('cache');
    },
    BUILD_MS,
  );

  it(
    'frees the dataset when a job is cancelled while it loads',
    async () => {
      await restart();
      // Out of the page cache, so the load takes a while: reading from the disk.
      execFileSync('dd', [`if=${cached}`, 'iflag=nocache', 'count=0', 'status=none']);
      const task = await hashBatch(KEY, VECTOR_INPUTS, { mode: variant('s', 'fast') });
      // From the start of the dataset phase: the key's cache (256 MiB, built meanwhile and
      // kept after the job) and the dataset as it loads.
      await untilTask(client, task, 'Phase', (p) => p === 'dataset');
      const base = rssBytes(daemon.pid);
      const cache = 256 * 2 ** 20;
      // Half a gigabyte of the dataset in: the load is under way.
      await untilRss(daemon.pid, (rss) => rss > base + cache + 512 * 2 ** 20, 'no load');
      await cancel(task);
      await untilTask(client, task, 'State', (s) => s === 'cancelled');
      await untilRss(daemon.pid, (rss) => rss < base + cache + 64 * 2 ** 20, 'after the cancel');
      // The file is still good: nothing was wrong with it.
      expect(fs.existsSync(cached)).toBe(true);
    },
    BUILD_MS,
  );

  it(
    'rebuilds when bytes of the file are flipped: the vectors hold, the file is replaced',
    async () => {
      const fd = fs.openSync(cached, 'r+');
      for (let i = 0; i < 8; i++) {
        const at = HEADER_BYTES + Math.floor(Math.random() * datasetBytes());
        const byte = Buffer.alloc(1);
        fs.readSync(fd, byte, 0, 1, at);
        byte[0] ^= 0xff;
        fs.writeSync(fd, byte, 0, 1, at);
      }
      fs.closeSync(fd);
      await restart();
      const result = await fastVectors();
      expect(result.dataset_source).toBe('built');
      expect(daemon.output()).toMatch(/does not match its checksum; deleting it/);
      // Written again, whole, from the new build.
      await untilLogged(daemon, /dataset cache: saved /);
      expect(fs.statSync(cached).size).toBe(HEADER_BYTES + datasetBytes());
    },
    BUILD_MS,
  );

  it(
    'refuses a file whose items belong to another key, and keeps one file (the most recent)',
    async () => {
      // A consistent file (every checksum right) claiming another key: only the items
      // recomputed from that key's cache can tell. A copy of the real file, rewritten in
      // place; the real one is kept under another name for the next case (a hard link).
      fs.linkSync(cached, backup);
      const other = Buffer.from('vigil cache test: another key');
      const forged = path.join(cacheDir, datasetFileName(other));
      fs.copyFileSync(cached, forged);
      const fd = fs.openSync(forged, 'r+');
      const header = Buffer.alloc(HEADER_BYTES);
      fs.readSync(fd, header, 0, HEADER_BYTES, 0);
      const decoded = decodeHeader(header, {
        keyHash: sha256(KEY),
        itemSize: DATASET_ITEM_SIZE,
        itemCount: native().datasetItemCount(),
      });
      if (typeof decoded === 'string') throw new Error(decoded);
      fs.writeSync(fd, encodeHeader({ ...decoded, keyHash: sha256(other) }), 0, HEADER_BYTES, 0);
      fs.closeSync(fd);
      await restart();
      const task = await hashBatch(other, [VECTOR_INPUTS[0]], { mode: variant('s', 'fast') });
      await untilLogged(daemon, /items checked differ from the key's/);
      expect(fs.existsSync(forged)).toBe(false);
      // dataset_cache = 1 and two files: the least recently used (the real one) went first.
      expect(daemon.output()).toMatch(/removing randomx-\S+, the least recently used/);
      expect(fs.existsSync(cached)).toBe(false);
      await cancel(task);
      await untilTask(client, task, 'State', (s) => s === 'cancelled');
    },
    BUILD_MS,
  );

  it(
    'deletes a truncated file and builds instead',
    async () => {
      fs.linkSync(backup, cached);
      fs.truncateSync(cached, HEADER_BYTES + 12345);
      await restart();
      const task = await hashBatch(KEY, [VECTOR_INPUTS[0]], { mode: variant('s', 'fast') });
      await untilLogged(daemon, /truncated or padded.*deleting it/);
      expect(fs.existsSync(cached)).toBe(false);
      await untilTask(client, task, 'Done', (d) => (d as bigint) > 0n);
      await cancel(task);
    },
    BUILD_MS,
  );

  it(
    'deletes what cannot be read and builds instead',
    async () => {
      fs.mkdirSync(cached);
      await restart();
      const task = await hashBatch(KEY, [VECTOR_INPUTS[0]], { mode: variant('s', 'fast') });
      await untilLogged(daemon, /cannot be read .*deleting it/);
      expect(fs.existsSync(cached)).toBe(false);
      await untilTask(client, task, 'Done', (d) => (d as bigint) > 0n);
      await cancel(task);
    },
    BUILD_MS,
  );
});

describe('key switches prepared in the background', () => {
  // dataset_cache = 0: the two builds here must leave the cache directory empty.
  const cacheDir = tempDir('vigil-rx-switch-cache-');
  const config = randomxConfig(tempDir('vigil-rx-switch-'), ['threads = 2', 'dataset_cache = 0']);
  const first = Buffer.from('vigil switch test: first key');
  const next = Buffer.from('vigil switch test: next key');
  const blob = randomBytes(76);
  const difficulty = 100n;
  const COUNT = 2000;
  let daemon: RxDaemon;

  beforeAll(async () => {
    daemon = await startRxDaemon(
      bus.address,
      tempDir('vigil-rx-switch-state-'),
      config,
      [],
      cacheDir,
    );
  }, 60000);

  afterAll(async () => {
    await daemon?.stop();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  it(
    'switches to next_key without a dataset phase; every nonce re-hashed',
    async () => {
      // The first key's dataset, built on both cores before the one-thread search uses it.
      await waitTask(client, await hashBatch(first, [blob], { mode: variant('s', 'fast') }));
      const [task] = (await client.call(RX_PATH, RX_IFACE, 'Search', 'ayayuta{sv}', [
        first,
        blob,
        39,
        difficulty,
        {
          mode: variant('s', 'fast'),
          threads: variant('u', 1),
          count: variant('u', COUNT),
          next_key: variant('ay', next),
        },
      ])) as string[];
      await untilTask(client, task, 'Phase', (p) => p === 'hashing', BUILD_MS);
      await untilTask(client, task, 'Done', (d) => (d as bigint) > 0n);
      // Paused, the search leaves both cores to the background build of the next dataset.
      await client.call(task, TASK_IFACE, 'Pause');
      await untilLogged(daemon, /the next key's dataset is ready \(built\)/);
      const datasetPhases = phases(task, 'dataset');
      await client.call(task, TASK_IFACE, 'Input', 'a{sv}', [{ key: variant('ay', next) }]);
      await client.call(task, TASK_IFACE, 'Resume');
      const result = await waitTask(client, task);
      // The switch found the dataset ready: no second dataset phase.
      expect(phases(task, 'dataset')).toBe(datasetPhases);
      expect(result.job).toBe(1);
      expect(result.dataset_source).toBe('built');
      expect(result.next_nonce).toBe(BigInt(COUNT));

      // Every answer re-hashed in light mode; none missed, by a fast HashBatch of the range.
      const found = result.found as Array<[number, Buffer]>;
      expect(found.length).toBeGreaterThan(0);
      const light = await lightHashes(
        next,
        found.map(([n]) => withNonce(blob, 39, n)),
      );
      found.forEach(([, h], i) => expect(h.equals(light[i])).toBe(true));
      const all = (
        await waitTask(
          client,
          await hashBatch(
            next,
            Array.from({ length: COUNT }, (_, n) => withNonce(blob, 39, n)),
            { mode: variant('s', 'fast') },
          ),
        )
      ).hashes as Buffer[];
      expect(found.map(([n]) => n)).toEqual(
        all.flatMap((h, n) => (meetsDifficulty(h, difficulty) ? [n] : [])),
      );
      const superseded = result.superseded as Array<[number, number, Buffer]>;
      const before =
        superseded.length === 0
          ? []
          : await lightHashes(
              first,
              superseded.map(([, n]) => withNonce(blob, 39, n)),
            );
      superseded.forEach(([job, , h], i) => {
        expect(job).toBe(0);
        expect(h.equals(before[i])).toBe(true);
        expect(meetsDifficulty(h, difficulty)).toBe(true);
      });
      // dataset_cache = 0: neither build was written.
      expect(fs.readdirSync(cacheDir)).toEqual([]);
    },
    2 * BUILD_MS,
  );

  it(
    'frees a background build when its search is cancelled',
    async () => {
      const before = rssBytes(daemon.pid);
      const [task] = (await client.call(RX_PATH, RX_IFACE, 'Search', 'ayayuta{sv}', [
        next,
        blob,
        39,
        difficulty,
        {
          mode: variant('s', 'fast'),
          threads: variant('u', 1),
          next_key: variant('ay', Buffer.from('vigil switch test: never used')),
        },
      ])) as string[];
      await untilTask(client, task, 'Done', (d) => (d as bigint) > 0n);
      await client.call(task, TASK_IFACE, 'Pause');
      await untilRss(daemon.pid, (rss) => rss > before + 512 * 2 ** 20, 'the build did not start');
      await cancel(task);
      await untilRss(daemon.pid, (rss) => rss < before + 64 * 2 ** 20, 'after the cancel');
    },
    BUILD_MS,
  );
});

describe('a dataset cache on a full filesystem', () => {
  let mount: string;
  let daemon: RxDaemon;

  beforeAll(async () => {
    mount = tempDir('vigil-rx-tinyfs-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mount]);
    const config = randomxConfig(tempDir('vigil-rx-tiny-'), ['threads = 2']);
    daemon = await startRxDaemon(bus.address, tempDir('vigil-rx-tiny-state-'), config, [], mount);
  }, 60000);

  afterAll(async () => {
    await daemon?.stop();
    if (mount) execFileSync('umount', [mount]);
  });

  it(
    'fails the write with a log line, and the job completes',
    async () => {
      const key = Buffer.from('vigil tiny cache key');
      const task = await hashBatch(key, [VECTOR_INPUTS[0]], { mode: variant('s', 'fast') });
      const result = await waitTask(client, task);
      expect(result.dataset_source).toBe('built');
      expect(
        (await lightHashes(key, [VECTOR_INPUTS[0]]))[0].equals((result.hashes as Buffer[])[0]),
      ).toBe(true);
      await untilLogged(daemon, /dataset cache: cannot write .*ENOSPC/);
      // Nothing half-written is left behind.
      expect(fs.readdirSync(mount)).toEqual([]);
    },
    BUILD_MS,
  );
});
