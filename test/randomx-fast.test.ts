/**
 * Fast mode end to end: one 2080 MiB dataset build for the whole file (about 40 s on two
 * cores), reported as its own phase, then the vectors and agreement with light mode.
 */
import { randomBytes } from 'node:crypto';
import type { Message } from '../src/bus/wire/message';
import { native } from '../src/randomx/native';
import { meetsDifficulty } from '../src/randomx/validate';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { TestClient, plain, variant, type SignalLog } from './helpers/client';
import { VECTORS, withNonce } from './randomx/harness';
import {
  RX_IFACE,
  RX_PATH,
  TASK_IFACE,
  randomxConfig,
  startRxDaemon,
  tempDir,
  waitTask,
  type RxDaemon,
} from './randomx/daemon';

const KEY = Buffer.from(VECTORS[0][0]);

let bus: PrivateBus;
let daemon: RxDaemon;
let client: TestClient;
let changes: SignalLog;
let progress: SignalLog;

beforeAll(async () => {
  bus = await startPrivateBus();
  const config = randomxConfig(tempDir('vigil-rx-fast-'), ['threads = 2']);
  daemon = await startRxDaemon(bus.address, tempDir('vigil-rx-fast-state-'), config);
  client = await TestClient.connect(bus.address);
  changes = await client.subscribe({ member: 'PropertiesChanged' });
  progress = await client.subscribe({ iface: TASK_IFACE, member: 'Progress' });
}, 60000);

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
});

const changed = (m: Message, path: string, prop: string, value: unknown): boolean =>
  m.path === path && (plain(m.body[1]) as Record<string, unknown>)[prop] === value;

describe('RandomX fast mode over D-Bus', () => {
  const randomInputs = Array.from({ length: 4 }, (_, i) => randomBytes(8 + i * 40));
  let fastHashes: Buffer[];

  it('builds the dataset as its own phase, then gives the vectors through HashBatch', async () => {
    const inputs = [...VECTORS.map(([, input]) => Buffer.from(input)), ...randomInputs];
    const [task] = (await client.call(RX_PATH, RX_IFACE, 'HashBatch', 'ayaaya{sv}', [
      KEY,
      inputs,
      { mode: variant('s', 'fast') },
    ])) as string[];
    const result = await waitTask(client, task);
    fastHashes = result.hashes as Buffer[];
    expect(fastHashes.slice(0, 3).map((h) => h.toString('hex'))).toEqual(
      VECTORS.map(([, , h]) => h),
    );
    expect(result.mode).toBe('fast');

    // The dataset phase came first, with progress over the dataset items, then hashing.
    const items = BigInt(native().datasetItemCount());
    expect(changes.count((m) => changed(m, task, 'Phase', 'dataset'))).toBe(1);
    expect(changes.count((m) => changed(m, task, 'Phase', 'hashing'))).toBe(1);
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
  }, 240000);

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
    const [task] = (await client.call(RX_PATH, RX_IFACE, 'HashBatch', 'ayaaya{sv}', [
      KEY,
      randomInputs,
      { mode: variant('s', 'light') },
    ])) as string[];
    const light = (await waitTask(client, task)).hashes as Buffer[];
    expect(light).toEqual(fastHashes.slice(3));
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
    expect(changes.count((m) => changed(m, task, 'Phase', 'dataset'))).toBe(0);
    const inputs = Array.from({ length: 200 }, (_, n) => withNonce(blob, 39, n));
    const [check] = (await client.call(RX_PATH, RX_IFACE, 'HashBatch', 'ayaaya{sv}', [
      KEY,
      inputs,
      { mode: variant('s', 'light') },
    ])) as string[];
    const light = (await waitTask(client, check)).hashes as Buffer[];
    const expected = light.flatMap((h, n) => (meetsDifficulty(h, 4n) ? [n] : []));
    const found = result.found as Array<[number, Buffer]>;
    expect(found.map(([n]) => n)).toEqual(expected);
    for (const [n, h] of found) expect(h.equals(light[n])).toBe(true);
  }, 120000);
});
