/**
 * Benchmark: build (or reuse, or load) a key's cache and dataset, then hash `nonces` 76-byte
 * blobs the way a miner does, and report the rate and what the initialisation cost. With a
 * next key, that key's dataset is prepared in the background meanwhile (hashing goes on under
 * the first key until it is ready), then the benchmark switches to it and hashes `nonces`
 * more: the gap between the two is the switch.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { NONCE_SPACE } from './validate';
import { followScan } from './dispatch';
import { datasetSource, type JobRuntime } from './job-runtime';
import type { Binding } from './protocol';
import type { BenchmarkParams, BenchmarkResult, JobHooks } from './types';

/** The blob hashed: 76 bytes of 0x5a with the nonce at byte 39, like a Monero hashing blob. */
const BLOB_BYTES = 76;
const NONCE_OFFSET = 39;

interface Hashed {
  hashes: number;
  seconds: number;
  /** When the last hash was done (performance.now()). */
  ended: number;
}

/** Hash nonces [0, end) on `threads` workers; `until`, if given, stops the scan early. */
async function hashNonces(
  rt: JobRuntime,
  binding: Binding,
  end: number,
  threads: number,
  hooks: JobHooks,
  total: number,
  until?: (hashes: number) => boolean,
): Promise<Hashed> {
  let done = 0;
  const t0 = performance.now();
  const scan = rt.pool.scan(
    {
      op: 'scan',
      binding,
      blob: Buffer.alloc(BLOB_BYTES, 0x5a),
      nonceOffset: NONCE_OFFSET,
      end,
      target: null,
    },
    0,
    threads,
    hooks.paused,
    (report) => {
      done += report.hashes;
      rt.meter.add(report.hashes);
      hooks.progress(Math.min(done, total), total);
      if (until?.(done)) scan.stop();
    },
  );
  await followScan(rt.pool, scan, hooks);
  const ended = performance.now();
  return { hashes: done, seconds: (ended - t0) / 1000, ended };
}

export async function runBenchmark(
  rt: JobRuntime,
  params: BenchmarkParams,
  hooks: JobHooks,
): Promise<BenchmarkResult> {
  const { nonces, mode } = params;
  const job = await rt.start(params.threads, hooks.signal);
  const threads = job.threads;
  try {
    // A fresh key by default, so the benchmark measures a real cache and dataset build.
    const key = params.key ?? randomBytes(32);
    const t0 = performance.now();
    const lease = await rt.resources.acquire(key, mode, threads, hooks);
    const initSeconds = (performance.now() - t0) / 1000;
    const preparation = params.nextKey ? rt.resources.prepare(params.nextKey) : undefined;
    try {
      hooks.setPhase('hashing', nonces);
      let ready = preparation === undefined;
      void preparation?.ready.finally(() => (ready = true));
      const tPrepare = performance.now();
      // With a next key, hashing goes on until its dataset is ready: the rate is measured
      // while it is prepared, and the switch comes at least one build-time later.
      const first = await hashNonces(
        rt,
        lease.binding,
        params.nextKey ? NONCE_SPACE : nonces,
        threads,
        hooks,
        nonces,
        params.nextKey ? (hashes) => hashes >= nonces && ready : undefined,
      );
      const hashRate = first.hashes / first.seconds;
      rt.meter.set(hashRate);
      rt.announce();
      const result: BenchmarkResult = {
        hashRate,
        initSeconds,
        cacheSeconds: lease.resource.cacheSeconds,
        datasetSeconds: mode === 'fast' ? lease.resource.datasetSeconds : 0,
        hashSeconds: first.seconds,
        mode,
        threads,
        nonces: first.hashes,
        ...datasetSource(lease.resource, mode),
      };
      if (!params.nextKey) return result;
      const prepareSeconds = (performance.now() - tPrepare) / 1000;
      const next = await rt.resources.acquire(params.nextKey, mode, threads, hooks);
      try {
        hooks.setPhase('hashing', nonces);
        const switched = performance.now();
        const second = await hashNonces(rt, next.binding, nonces, threads, hooks, nonces);
        // The first hash under the next key ends one hash-time after the scan started.
        const firstHash = switched + (second.seconds * 1000 * threads) / second.hashes;
        return {
          ...result,
          next: {
            prepareSeconds,
            switchSeconds: (firstHash - first.ended) / 1000,
            hashRate: second.hashes / second.seconds,
            ...datasetSource(next.resource, mode),
          },
        };
      } finally {
        next.release();
      }
    } finally {
      preparation?.release();
      lease.release();
    }
  } finally {
    job.end();
  }
}
