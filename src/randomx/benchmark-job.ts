/**
 * Benchmark: build (or reuse) a key's cache and dataset, then hash `nonces` 76-byte blobs the
 * way a miner does, and report the rate and what the initialisation cost.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { followScan } from './dispatch';
import type { JobRuntime } from './job-runtime';
import type { BenchmarkParams, BenchmarkResult, JobHooks } from './types';

/** The blob hashed: 76 bytes of 0x5a with the nonce at byte 39, like a Monero hashing blob. */
const BLOB_BYTES = 76;
const NONCE_OFFSET = 39;

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
    try {
      hooks.setPhase('hashing', nonces);
      const blob = Buffer.alloc(BLOB_BYTES, 0x5a);
      let done = 0;
      const t1 = performance.now();
      const scan = rt.pool.scan(
        {
          op: 'scan',
          binding: lease.binding,
          blob,
          nonceOffset: NONCE_OFFSET,
          end: nonces,
          target: null,
        },
        0,
        threads,
        hooks.paused,
        (report) => {
          done += report.hashes;
          rt.meter.add(report.hashes);
          hooks.progress(done, nonces);
        },
      );
      await followScan(rt.pool, scan, hooks);
      const hashSeconds = (performance.now() - t1) / 1000;
      const hashRate = nonces / hashSeconds;
      rt.meter.set(hashRate);
      rt.announce();
      return {
        hashRate,
        initSeconds,
        cacheSeconds: lease.resource.cacheSeconds,
        datasetSeconds: mode === 'fast' ? lease.resource.datasetSeconds : 0,
        hashSeconds,
        mode,
        threads,
        nonces,
      };
    } finally {
      lease.release();
    }
  } finally {
    job.end();
  }
}
