/**
 * RandomX datasets across restarts and key switches, on one private bus, in one run:
 *
 *   - warm start: vigild started with a cached dataset, to the first hash of a fast Benchmark
 *     for that key (bar: at most 3 s), against a start that must build it;
 *   - key switch: Benchmark with next_key, the next dataset prepared in the background for at
 *     least one build-time: the gap from the last hash under the old key to the first under
 *     the new (bar: at most 1 s);
 *   - what a background cache write and a background next-key build cost the hash rate, each
 *     measured against the same work without it, interleaved.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/randomx/datasets.js [--reps N] [--threads T]
 *     [--nonces N]
 *
 * Prints Markdown tables for BENCHMARKS.md and writes bench/out/randomx-datasets.json.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { datasetFileName } from '../../src/randomx/dataset-file';
import { startPrivateBus } from '../../test/helpers/bus';
import { TestClient, variant } from '../../test/helpers/client';
import {
  RX_IFACE,
  RX_PATH,
  randomxConfig,
  startRxDaemon,
  tempDir,
  waitTask,
  type RxDaemon,
} from '../../test/randomx/daemon';
import { median, report, runBench } from './common';

type Result = Record<string, unknown>;

async function benchmark(
  client: TestClient,
  nonces: number,
  options: Record<string, ReturnType<typeof variant>>,
): Promise<Result> {
  const [task] = (await client.call(RX_PATH, RX_IFACE, 'Benchmark', 'ua{sv}', [
    nonces,
    { mode: variant('s', 'fast'), ...options },
  ])) as string[];
  return waitTask(client, task);
}

async function search(
  client: TestClient,
  key: Buffer,
  count: number,
  threads: number,
  nextKey?: Buffer,
): Promise<Result> {
  const options: Record<string, ReturnType<typeof variant>> = {
    mode: variant('s', 'fast'),
    threads: variant('u', threads),
    count: variant('u', count),
  };
  if (nextKey) options.next_key = variant('ay', nextKey);
  const [task] = (await client.call(RX_PATH, RX_IFACE, 'Search', 'ayayuta{sv}', [
    key,
    Buffer.alloc(76, 0x5a),
    39,
    1n << 62n,
    options,
  ])) as string[];
  return waitTask(client, task);
}

async function untilLogged(daemon: RxDaemon, pattern: RegExp, from = 0): Promise<void> {
  while (!pattern.test(daemon.output().slice(from))) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' },
      threads: { type: 'string', default: '2' },
      nonces: { type: 'string', default: '8000' },
    },
  });
  const reps = Number(values.reps);
  const threads = Number(values.threads);
  const nonces = Number(values.nonces);
  const bus = await startPrivateBus();
  const client = await TestClient.connect(bus.address);
  const cacheDir = tempDir('vigil-bench-cache-');
  const stateDir = tempDir('vigil-bench-state-');
  const config = randomxConfig(tempDir('vigil-bench-'), [`threads = ${threads}`]);
  const start = (): Promise<RxDaemon> => startRxDaemon(bus.address, stateDir, config, [], cacheDir);
  const log: Record<string, unknown[]> = { warm: [], cold: [], switch: [], write: [], prepare: [] };
  const say = (what: string, r: unknown): void => {
    log[what].push(r);
    console.error(what, JSON.stringify(r));
  };
  let daemon = await start();
  try {
    // Warm start: the key's dataset is in the cache directory; from spawn to first hash.
    const key = randomBytes(32);
    await benchmark(client, 100, { key: variant('ay', key) });
    await untilLogged(daemon, /dataset cache: saved /);
    const firstHash = async (cold: boolean): Promise<void> => {
      await daemon.stop();
      if (cold) fs.rmSync(cacheDir, { recursive: true, force: true });
      const spawned = performance.now();
      daemon = await start();
      const submitted = performance.now();
      const r = await benchmark(client, 200, { key: variant('ay', key) });
      // The first hash is one hash-time (per worker) after initialisation ended.
      const oneHash = (Number(r.hash_seconds) * Number(r.threads)) / Number(r.nonces);
      const seconds = (submitted - spawned) / 1000 + Number(r.init_seconds) + oneHash;
      say(cold ? 'cold' : 'warm', { seconds, source: r.dataset_source, init: r.init_seconds });
    };
    for (let i = 0; i < reps; i++) {
      await firstHash(false);
      // The same from the disk, not the page cache.
      execFileSync('dd', [
        `if=${path.join(cacheDir, datasetFileName(key))}`,
        'iflag=nocache',
        'count=0',
        'status=none',
      ]);
      const seconds = await firstHash(false);
      (log.warm[log.warm.length - 1] as Record<string, unknown>).diskRead = true;
      void seconds;
    }
    await firstHash(true);
    await untilLogged(daemon, /dataset cache: saved /);

    // Key switch: one thread hashes, so the background build of the next key (nice 19, one
    // worker) has a core; Benchmark hashes on until it is ready, then switches.
    for (let i = 0; i < reps; i++) {
      const r = await benchmark(client, 2000, {
        key: variant('ay', key),
        threads: variant('u', 1),
        next_key: variant('ay', randomBytes(32)),
      });
      say('switch', {
        switchSeconds: r.switch_seconds,
        prepareSeconds: r.next_prepare_seconds,
        before: r.hashrate,
        after: r.next_hashrate,
      });
    }

    // A background cache write: a fresh key's build ends, its write starts, and the
    // benchmark hashes meanwhile; then the same key again, nothing written.
    for (let i = 0; i < reps; i++) {
      const fresh = randomBytes(32);
      const mark = daemon.output().length;
      const during = await benchmark(client, nonces, { key: variant('ay', fresh) });
      const writing = !/dataset cache: saved /.test(daemon.output().slice(mark));
      await untilLogged(daemon, /dataset cache: saved /, mark);
      const after = await benchmark(client, nonces, { key: variant('ay', fresh) });
      say('write', {
        during: during.hashrate,
        after: after.hashrate,
        ratio: Number(during.hashrate) / Number(after.hashrate),
        writeOutlastedHashing: writing,
      });
    }

    // A background next-key build: the same search with and without next_key, interleaved.
    for (let i = 0; i < reps; i++) {
      const pair = [
        async () => ({
          with: (await search(client, key, nonces, threads, randomBytes(32))).hashrate,
        }),
        async () => ({ without: (await search(client, key, nonces, threads)).hashrate }),
      ];
      if (i % 2) pair.reverse();
      const r = Object.assign({}, await pair[0](), await pair[1]()) as Record<string, number>;
      say('prepare', { ...r, ratio: r.with / r.without });
    }
  } finally {
    client.close();
    await daemon.stop();
    await bus.stop();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
  const col = (what: string, field: string): number[] =>
    log[what].map((r) => Number((r as Record<string, unknown>)[field]));
  const rows = [
    '| measure | median | runs | bar |',
    '|---|---|---|---|',
    `| warm start to first hash, file in the page cache (s) | ${median(col('warm', 'seconds').filter((_, i) => i % 2 === 0)).toFixed(2)} | ${reps} | ≤ 3 |`,
    `| warm start to first hash, file read from the disk (s) | ${median(col('warm', 'seconds').filter((_, i) => i % 2 === 1)).toFixed(2)} | ${reps} | ≤ 3 |`,
    `| cold start to first hash, dataset built (s) | ${median(col('cold', 'seconds')).toFixed(2)} | 1 | – |`,
    `| key switch gap, next key prepared in the background (s) | ${median(col('switch', 'switchSeconds')).toFixed(3)} | ${reps} | ≤ 1 |`,
    `| background preparation of the next key, 1 hashing thread (s) | ${median(col('switch', 'prepareSeconds')).toFixed(1)} | ${reps} | – |`,
    `| H/s during a background cache write / after it | ${(median(col('write', 'ratio')) * 100).toFixed(1)}% | ${reps} | ≥ 95% |`,
    `| H/s during a background next-key build / without | ${(median(col('prepare', 'ratio')) * 100).toFixed(1)}% | ${reps} | – |`,
  ];
  report('randomx-datasets.json', log, rows);
}

runBench(main);
