/**
 * HashBatch: many inputs under one key, split across workers that claim inputs one at a time
 * from a shared counter and write the hashes in place, in input order.
 */
import { performance } from 'node:perf_hooks';
import { VigilError } from '../core/errors';
import { JobControl, cancelled } from './control';
import { datasetSource, type JobRuntime } from './job-runtime';
import { HASH_SIZE } from './native';
import type { Binding, HashBatchReply, HashBatchRequest } from './protocol';
import type { BatchParams, BatchResult, JobHooks } from './types';

const PROGRESS_POLL_MS = 100;

export async function runBatch(
  rt: JobRuntime,
  params: BatchParams,
  hooks: JobHooks,
): Promise<BatchResult> {
  // All the job's threads build a dataset; no more workers than inputs hash.
  const job = await rt.start(params.threads, hooks.signal);
  try {
    const lease = await rt.resources.acquire(params.key, params.mode, job.threads, hooks);
    try {
      hooks.setPhase('hashing', params.inputs.length);
      const workers = Math.min(job.threads, params.inputs.length);
      const result = await hashAll(rt, lease.binding, params.inputs, workers, hooks);
      return { ...result, ...datasetSource(lease.resource, params.mode) };
    } finally {
      lease.release();
    }
  } finally {
    job.end();
  }
}

async function hashAll(
  rt: JobRuntime,
  binding: Binding,
  inputs: readonly Buffer[],
  threads: number,
  hooks: JobHooks,
): Promise<BatchResult> {
  const total = inputs.reduce((sum, input) => sum + input.length, 0);
  const data = new Uint8Array(new SharedArrayBuffer(Math.max(1, total)));
  const offsets = new Uint32Array(new SharedArrayBuffer(4 * (inputs.length + 1)));
  let at = 0;
  inputs.forEach((input, i) => {
    offsets[i] = at;
    data.set(input, at);
    at += input.length;
  });
  offsets[inputs.length] = at;
  const output = new Uint8Array(new SharedArrayBuffer(HASH_SIZE * inputs.length));
  const counters = new Int32Array(new SharedArrayBuffer(8));
  const control = new JobControl(hooks.paused);
  let reported = 0;
  const report = (): void => {
    const done = Atomics.load(counters, 1);
    rt.meter.add(done - reported);
    reported = done;
    hooks.progress(done, inputs.length);
  };
  const timer = setInterval(report, PROGRESS_POLL_MS);
  const started = performance.now();
  try {
    const request: HashBatchRequest = {
      op: 'hashBatch',
      binding,
      data: data.buffer as SharedArrayBuffer,
      offsets: offsets.buffer as SharedArrayBuffer,
      output: output.buffer as SharedArrayBuffer,
      counters: counters.buffer as SharedArrayBuffer,
      control: control.buffer,
    };
    const runs = Array.from({ length: threads }, () =>
      rt.pool.run<HashBatchReply>(request).catch((e: unknown) => {
        control.cancel(); // one worker failed: stop its siblings, then fail the job
        throw e;
      }),
    );
    const results = await rt.pool.follow(control, hooks, Promise.allSettled(runs));
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
    if (hooks.signal.aborted) throw cancelled();
    const hashed = results.reduce(
      (sum, r) => sum + (r.status === 'fulfilled' ? r.value.hashed : 0),
      0,
    );
    if (hashed !== inputs.length) {
      throw new VigilError('Failed', `hashed ${hashed} of ${inputs.length} inputs`);
    }
    report();
    const seconds = (performance.now() - started) / 1000;
    const hashes = inputs.map((_, i) =>
      Buffer.from(output.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)),
    );
    return { hashes, mode: binding.mode, threads, hashRate: inputs.length / seconds };
  } finally {
    clearInterval(timer);
  }
}
