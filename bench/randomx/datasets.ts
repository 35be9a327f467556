/**
 * RandomX datasets across restarts and key switches, on one private bus, in one run:
 *
 *   - warm: vigild started with a cached dataset, to the first hash of a fast Benchmark for
 *     that key (bar: at most 3 s), with where the time went (daemon start, the key's cache,
 *     reading and checking the file, the first hash) and the daemon's CPU seconds; against a
 *     start that must build the dataset (cold);
 *   - switch: Benchmark with next_key on one hashing thread, the next dataset prepared in the
 *     background for at least one build-time: the gap from the last hash under the old key to
 *     the first under the new (bar: at most 1 s), and how long the preparation took;
 *   - write, prepare: what a background cache write and a background next-key build cost the
 *     hash rate, each measured against the same work without it, interleaved;
 *   - busy (not run unless asked, 5-10 minutes): Benchmark with next_key on every hashing
 *     thread, so the background build has no free core: how long it takes, and the rate
 *     during it against the rate after.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/randomx/datasets.js [--reps N] [--threads T]
 *     [--nonces N] [--parts warm,cold,switch,write,prepare,busy]
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
  processCpuSeconds,
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

const PARTS = ['warm', 'cold', 'switch', 'write', 'prepare', 'busy'] as const;
type Part = (typeof PARTS)[number];
const DEFAULT_PARTS = 'warm,cold,switch,write,prepare';

/** The daemon's own account of a load: "loaded FILE in S s (read and checksummed ... )". */
function loadBreakdown(output: string): Record<string, number> {
  const lines = output.match(/dataset cache: loaded .*$/gm) ?? [];
  const m =
    /in ([\d.]+) s \(read and checksummed by \d+ workers in ([\d.]+) s, ([\d.]+) CPU s; the key's cache filled beside it in ([\d.]+) s; \d+ items recomputed in ([\d.]+) s/.exec(
      lines.at(-1) ?? '',
    );
  if (!m) return {};
  const [load, read, readCpu, cache, verify] = m.slice(1).map(Number);
  return { load, read, readCpu, cache, verify };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' },
      threads: { type: 'string', default: '2' },
      nonces: { type: 'string', default: '8000' },
      parts: { type: 'string', default: DEFAULT_PARTS },
    },
  });
  const reps = Number(values.reps);
  const threads = Number(values.threads);
  const nonces = Number(values.nonces);
  const parts = new Set(values.parts.split(',') as Part[]);
  for (const part of parts) if (!PARTS.includes(part)) throw new Error(`no part ${part}`);
  const bus = await startPrivateBus();
  const client = await TestClient.connect(bus.address);
  const cacheDir = tempDir('vigil-bench-cache-');
  const stateDir = tempDir('vigil-bench-state-');
  const config = randomxConfig(tempDir('vigil-bench-'), [`threads = ${threads}`]);
  const start = (withConfig = config): Promise<RxDaemon> =>
    startRxDaemon(bus.address, stateDir, withConfig, [], cacheDir);
  const log: Record<Part, Array<Record<string, unknown>>> = {
    warm: [],
    cold: [],
    switch: [],
    write: [],
    prepare: [],
    busy: [],
  };
  const say = (what: Part, r: Record<string, unknown>): void => {
    log[what].push(r);
    console.error(what, JSON.stringify(r));
  };
  let daemon = await start();
  try {
    const key = randomBytes(32);
    const file = path.join(cacheDir, datasetFileName(key));
    if (parts.has('warm') || parts.has('cold')) {
      await benchmark(client, 100, { key: variant('ay', key) });
      await untilLogged(daemon, /dataset cache: saved /);
    }
    // From spawn to the first hash of a fast Benchmark for `key`, and where the time went.
    const firstHash = async (part: 'warm' | 'cold', diskRead = false): Promise<void> => {
      await daemon.stop();
      if (part === 'cold') fs.rmSync(cacheDir, { recursive: true, force: true });
      // The file read from the disk, not the page cache: drop its cached pages.
      if (diskRead) execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
      const spawned = performance.now();
      daemon = await start();
      const called = performance.now();
      // A few hashes per thread only, so that the daemon's CPU at the end is what it took to
      // get to the first one.
      const r = await benchmark(client, 10 * threads, { key: variant('ay', key) });
      // The first hash is one hash-time (per worker) after initialisation ended.
      const oneHash = (Number(r.hash_seconds) * Number(r.threads)) / Number(r.nonces);
      const init = Number(r.init_seconds);
      const seconds = (called - spawned) / 1000 + init + oneHash;
      const cpu = processCpuSeconds(daemon.pid);
      say(part, {
        seconds,
        diskRead,
        source: r.dataset_source,
        daemonStart: (called - spawned) / 1000,
        init,
        firstHash: oneHash,
        cpuToFirstHash: cpu,
        ...loadBreakdown(daemon.output()),
      });
    };
    if (parts.has('warm')) {
      for (let i = 0; i < reps; i++) {
        await firstHash('warm');
        await firstHash('warm', true);
      }
    }
    if (parts.has('cold')) {
      await firstHash('cold');
      await untilLogged(daemon, /dataset cache: saved /);
    }

    // Key switch: one thread hashes, so the background build of the next key (one worker)
    // has a core; Benchmark hashes on until it is ready, then switches.
    const switchOnce = async (part: 'switch' | 'busy', hashing: number): Promise<void> => {
      const r = await benchmark(client, 2000, {
        key: variant('ay', key),
        threads: variant('u', hashing),
        next_key: variant('ay', randomBytes(32)),
      });
      say(part, {
        threads: hashing,
        switchSeconds: r.switch_seconds,
        prepareSeconds: r.next_prepare_seconds,
        during: r.hashrate,
        after: r.next_hashrate,
        ratio: Number(r.hashrate) / Number(r.next_hashrate),
      });
    };
    if (parts.has('switch')) for (let i = 0; i < reps; i++) await switchOnce('switch', 1);

    // A background cache write: a fresh key's build ends, its write starts, and the
    // benchmark hashes meanwhile; then the same key again. The control is the same sequence on
    // a daemon that writes nothing (dataset_cache = 0), interleaved: a first run on a fresh
    // dataset may differ from a second for reasons of its own, and the control has them too.
    if (parts.has('write')) {
      const sequence = async (): Promise<Record<string, number>> => {
        const fresh = randomBytes(32);
        const during = await benchmark(client, nonces, { key: variant('ay', fresh) });
        const after = await benchmark(client, nonces, { key: variant('ay', fresh) });
        return {
          during: Number(during.hashrate),
          after: Number(after.hashrate),
          ratio: Number(during.hashrate) / Number(after.hashrate),
        };
      };
      const noCache = randomxConfig(tempDir('vigil-bench-'), [
        `threads = ${threads}`,
        'dataset_cache = 0',
      ]);
      for (let i = 0; i < reps; i++) {
        const steps = [
          async (): Promise<Record<string, unknown>> => {
            await daemon.stop();
            daemon = await start();
            const mark = daemon.output().length;
            const r = await sequence();
            const tail = (): string => daemon.output().slice(mark);
            const writeOutlastedHashing = !/dataset cache: saved /.test(tail());
            await untilLogged(daemon, /dataset cache: saved /, mark);
            const saved =
              /saved \S+ in ([\d.]+) s \((direct I\/O|through the page cache), ([\d.]+) CPU s/.exec(
                tail(),
              );
            return {
              ...r,
              writeOutlastedHashing,
              writeSeconds: Number(saved?.[1]),
              writeCpu: Number(saved?.[3]),
              direct: saved?.[2] === 'direct I/O',
            };
          },
          async (): Promise<Record<string, unknown>> => {
            await daemon.stop();
            daemon = await start(noCache);
            const r = await sequence();
            return { controlDuring: r.during, controlAfter: r.after, controlRatio: r.ratio };
          },
        ];
        if (i % 2) steps.reverse();
        const r = Object.assign({}, await steps[0](), await steps[1]()) as Record<string, number>;
        say('write', { ...r, cost: 1 - r.ratio / r.controlRatio });
      }
      await daemon.stop();
      daemon = await start();
    }

    // A background next-key build: the same search with and without next_key, interleaved.
    if (parts.has('prepare')) {
      // The key's dataset made current first (the parts before may have left another key's),
      // so that neither side of a pair counts a dataset build in its rate.
      await search(client, key, 100, threads);
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
    }

    // The background build with no core to spare: every hashing thread busy until it is done.
    if (parts.has('busy')) await switchOnce('busy', threads);
  } finally {
    client.close();
    await daemon.stop();
    await bus.stop();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
  const col = (what: Part, field: string, pick = (_: Record<string, unknown>) => true): number[] =>
    log[what].filter(pick).map((r) => Number(r[field]));
  const fixed = (xs: number[], digits: number): string =>
    xs.length ? median(xs).toFixed(digits) : 'not run';
  const percent = (xs: number[]): string =>
    xs.length ? `${(median(xs) * 100).toFixed(1)}%` : 'not run';
  const cached = (r: Record<string, unknown>): boolean => r.diskRead === false;
  const fromDisk = (r: Record<string, unknown>): boolean => r.diskRead === true;
  const warm = col('warm', 'seconds', cached);
  const disk = col('warm', 'seconds', fromDisk);
  const rows = [
    '| measure | median | runs | bar | median / bar |',
    '|---|---|---|---|---|',
    `| warm start to first hash, file in the page cache (s) | ${fixed(warm, 2)} | ${warm.length} | ≤ 3 | ${warm.length ? (median(warm) / 3).toFixed(2) : '–'} |`,
    `| warm start to first hash, file read from the disk (s) | ${fixed(disk, 2)} | ${disk.length} | ≤ 3 | ${disk.length ? (median(disk) / 3).toFixed(2) : '–'} |`,
    `| – of which daemon start, spawn to name on the bus (s) | ${fixed(col('warm', 'daemonStart', cached), 2)} | | | |`,
    `| – of which the job's initialisation (s) | ${fixed(col('warm', 'init', cached), 2)} | | | |`,
    `| – in it, file read and checksummed (s) | ${fixed(col('warm', 'read', cached), 2)} | | | |`,
    `| – in it, the key's cache filled alongside (s) | ${fixed(col('warm', 'cache', cached), 2)} | | | |`,
    `| – in it, items recomputed (s) | ${fixed(col('warm', 'verify', cached), 3)} | | | |`,
    `| – of which the first hash (s) | ${fixed(col('warm', 'firstHash', cached), 3)} | | | |`,
    `| daemon CPU seconds to the first hashes (all threads, from spawn) | ${fixed(col('warm', 'cpuToFirstHash', cached), 2)} | | | |`,
    `| – of which reading and checksumming (CPU s) | ${fixed(col('warm', 'readCpu', cached), 2)} | | | |`,
    `| cold start to first hash, dataset built (s) | ${fixed(col('cold', 'seconds'), 2)} | ${log.cold.length} | – | |`,
    `| key switch gap, next key prepared in the background (s) | ${fixed(col('switch', 'switchSeconds'), 3)} | ${log.switch.length} | ≤ 1 | ${log.switch.length ? (median(col('switch', 'switchSeconds')) / 1).toFixed(3) : '–'} |`,
    `| background preparation of the next key, 1 hashing thread (s) | ${fixed(col('switch', 'prepareSeconds'), 1)} | ${log.switch.length} | – | |`,
    `| H/s during a background cache write / after it | ${percent(col('write', 'ratio'))} | ${log.write.length} | | |`,
    `| the same without a write (dataset_cache = 0), interleaved | ${percent(col('write', 'controlRatio'))} | ${log.write.length} | | |`,
    `| hash-rate cost of the write: 1 − (with / without) | ${percent(col('write', 'cost'))} | ${log.write.length} | ≤ 5% | |`,
    `| the write: seconds, CPU seconds of its thread | ${fixed(col('write', 'writeSeconds'), 1)}, ${fixed(col('write', 'writeCpu'), 2)} | ${log.write.length} | | |`,
    `| H/s during a background next-key build / without, ${threads} threads | ${percent(col('prepare', 'ratio'))} | ${log.prepare.length} | – | |`,
    `| background preparation of the next key, ${threads} hashing threads (s) | ${fixed(col('busy', 'prepareSeconds'), 1)} | ${log.busy.length} | – | |`,
    `| H/s during it / after the switch, ${threads} threads | ${percent(col('busy', 'ratio'))} | ${log.busy.length} | – | |`,
  ];
  report('randomx-datasets.json', log, rows);
}

runBench(main);
