/**
 * The RandomX engine: one piscina pool (one VM per worker), the per-key cache and fast-mode
 * dataset shared by every worker by address, and the long jobs (batch, search, benchmark)
 * split across the pool. Logic only: no bus here, so it is testable on its own.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { VigilError, isVigilError, messageOf } from '../core/errors';
import {
  CACHE_BYTES,
  Flag,
  HASH_SIZE,
  datasetBytes,
  featureNames,
  freeHugePageBytes,
  native,
  type Address,
} from './native';
import {
  Control,
  type Binding,
  type Fault,
  type HashBatchReply,
  type InitCacheReply,
  type InitDatasetReply,
  type Mode,
  type ScanReport,
  type ScanRequest,
  type WorkerRequest,
} from './protocol';
import { LIMITS, checkBatch, checkInput, checkKey, targetOf } from './validate';

/** What a long job sees of its task; a TaskContext satisfies it. */
export interface JobHooks {
  readonly signal: AbortSignal;
  readonly paused: boolean;
  onPauseChange(listener: (paused: boolean) => void): () => void;
  progress(done: number | bigint, total?: number | bigint): void;
  setPhase(phase: string, total?: number | bigint, share?: number): void;
}

/**
 * The part of a fast job's Progress given to building its dataset (about as long as hashing a
 * few thousand nonces on this kind of machine); hashing fills the rest.
 */
const DATASET_PROGRESS_SHARE = 0.5;

export interface EngineOptions {
  /** Workers for long jobs (the `Threads` property); the pool has one more for quick `Hash`. */
  threads?: number;
  /** Mode of jobs that do not name one (the `Mode` property). */
  defaultMode?: Mode;
  /** Use large pages when enough are free (default true); silently skipped otherwise. */
  largePages?: boolean;
  /** How often a running search checkpoints (default 2 s; the promise is at least every 5 s). */
  checkpointIntervalMs?: number;
  /** Answers a search keeps before it ends early with `truncated` (default LIMITS.maxFound). */
  maxFound?: number;
}

export interface JobOptions {
  mode: Mode;
  threads: number;
  /** Test hook only (not reachable over D-Bus): make the job's workers fail. */
  fault?: Fault;
}

export type DatasetState = 'none' | 'initializing' | 'ready';

export interface EngineProperties {
  mode: Mode;
  threads: number;
  datasetState: DatasetState;
  datasetKey: Buffer;
  features: string[];
  hashRate: number;
}

export interface SearchJob {
  key: Buffer;
  blob: Buffer;
  nonceOffset: number;
  difficulty: bigint;
}

export interface SearchParams extends SearchJob, JobOptions {
  startNonce: number;
  count: number;
}

export interface FoundNonce {
  nonce: number;
  hash: Buffer;
}

/** Everything needed to resume a search after a restart (kept as a task checkpoint). */
export interface SearchState {
  job: SearchJob;
  /** How many times Input switched the job. */
  jobIndex: number;
  /** Every nonce below this (from startNonce) is hashed and its accepted ones are in `found`. */
  nextNonce: number;
  found: FoundNonce[];
  /** Accepted nonces of earlier jobs, before Input replaced them. */
  superseded: Array<FoundNonce & { job: number }>;
  hashes: number;
}

export interface SearchHooks extends JobHooks {
  checkpoint(state: SearchState): void;
}

export interface SearchResult extends SearchState {
  /** The search stopped early because it had found maxFound answers. */
  truncated: boolean;
  mode: Mode;
  threads: number;
  hashRate: number;
}

export interface BatchResult {
  hashes: Buffer[];
  mode: Mode;
  threads: number;
  hashRate: number;
}

export interface BenchmarkResult {
  hashRate: number;
  initSeconds: number;
  cacheSeconds: number;
  datasetSeconds: number;
  hashSeconds: number;
  mode: Mode;
  threads: number;
  nonces: number;
}

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 2000;
const PROGRESS_POLL_MS = 100;
/** Headroom kept free beside the dataset, so the daemon is not pushed into the OOM killer. */
const MEMORY_HEADROOM_BYTES = 128 * 1024 * 1024;

const once = (fn: () => void): (() => void) => {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
};

const cancelled = (): VigilError => new VigilError('Cancelled', 'the task was cancelled');

function workerFailure(e: unknown): VigilError {
  if (isVigilError(e)) return e;
  return new VigilError('Failed', `RandomX worker failed: ${messageOf(e)}`);
}

/** Bytes this process may still allocate: MemAvailable, bounded by a cgroup v2 limit if any. */
export function availableMemoryBytes(): number {
  let available = Infinity;
  try {
    const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
    const match = /^MemAvailable:\s+(\d+)\s*kB/m.exec(meminfo);
    if (match) available = Number(match[1]) * 1024;
  } catch {
    // no /proc: trust the allocator alone
  }
  try {
    const line = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    if (line) {
      const dir = path.join('/sys/fs/cgroup', line.slice(3));
      const max = fs.readFileSync(path.join(dir, 'memory.max'), 'utf8').trim();
      if (max !== 'max') {
        const current = Number(fs.readFileSync(path.join(dir, 'memory.current'), 'utf8'));
        available = Math.min(available, Number(max) - current);
      }
    }
  } catch {
    // no cgroup v2 memory controller: MemAvailable is the bound
  }
  return available;
}

/** FIFO counting semaphore over the hashing workers, so long jobs never starve quick Hash. */
class Slots {
  private free: number;
  private readonly waiters: Array<{ n: number; grant: () => void }> = [];

  constructor(size: number) {
    this.free = size;
  }

  acquire(n: number, signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(cancelled());
    if (this.waiters.length === 0 && this.free >= n) {
      this.free -= n;
      return Promise.resolve(once(() => this.release(n)));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        n,
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(once(() => this.release(n)));
        },
      };
      const onAbort = (): void => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        this.drain();
        reject(cancelled());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private release(n: number): void {
    this.free += n;
    this.drain();
  }

  private drain(): void {
    while (this.waiters.length > 0 && this.free >= this.waiters[0].n) {
      const waiter = this.waiters.shift();
      if (!waiter) break;
      this.free -= waiter.n;
      waiter.grant();
    }
  }
}

/** A fast-mode dataset being built by several workers, possibly awaited by several jobs. */
class DatasetBuild {
  readonly control = new Int32Array(new SharedArrayBuffer(4));
  readonly progress = new Int32Array(new SharedArrayBuffer(4));
  private readonly waiters = new Set<JobHooks>();
  private readonly pausedWaiters = new Set<JobHooks>();
  promise: Promise<void> = Promise.resolve();

  constructor(readonly items: number) {}

  /** Every waiter left: the workers are stopping and the build will fail as cancelled. */
  get abandoned(): boolean {
    return Atomics.load(this.control, 0) === Control.CANCEL;
  }

  /** Wait for the build as one job: its progress, pause and cancel count towards the build. */
  async join(hooks: JobHooks): Promise<void> {
    this.waiters.add(hooks);
    if (hooks.paused) this.pausedWaiters.add(hooks);
    this.updateControl();
    const report = (): void => hooks.progress(Atomics.load(this.progress, 0), this.items);
    const timer = setInterval(report, PROGRESS_POLL_MS);
    const unsubscribe = hooks.onPauseChange((paused) => {
      if (paused) this.pausedWaiters.add(hooks);
      else this.pausedWaiters.delete(hooks);
      this.updateControl();
    });
    let onAbort = (): void => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(cancelled());
      if (hooks.signal.aborted) onAbort();
      else hooks.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.promise, aborted]);
      report();
    } finally {
      clearInterval(timer);
      unsubscribe();
      hooks.signal.removeEventListener('abort', onAbort);
      this.waiters.delete(hooks);
      this.pausedWaiters.delete(hooks);
      this.updateControl();
    }
  }

  private updateControl(): void {
    if (Atomics.load(this.control, 0) === Control.CANCEL) return;
    let state: number = Control.RUN;
    if (this.waiters.size === 0) state = Control.CANCEL;
    else if (this.pausedWaiters.size === this.waiters.size) state = Control.PAUSE;
    Atomics.store(this.control, 0, state);
    Atomics.notify(this.control, 0);
  }
}

/** The cache of one key and, in fast mode, its dataset. */
class KeyResource {
  cache: Address = 0;
  cacheLargePages = false;
  cacheReady: Promise<void> = Promise.resolve();
  cacheSeconds = 0;
  dataset: Address = 0;
  datasetLargePages = false;
  datasetState: DatasetState = 'none';
  datasetSerial = 0;
  datasetSeconds = 0;
  build: DatasetBuild | undefined;
  refs = 0;

  constructor(
    readonly serial: number,
    readonly key: Buffer,
  ) {}
}

interface Lease {
  resource: KeyResource;
  binding: Binding;
  release: () => void;
}

/** A job's control word, shared with its workers: cancel, stop (job switch) and pause. */
class JobControl {
  private readonly word = new Int32Array(new SharedArrayBuffer(4));
  private cancelled = false;
  private stopped = false;

  constructor(private paused: boolean) {
    this.update();
  }

  get buffer(): SharedArrayBuffer {
    return this.word.buffer as SharedArrayBuffer;
  }

  cancel(): void {
    this.cancelled = true;
    this.update();
  }

  stop(): void {
    this.stopped = true;
    this.update();
  }

  /** Cancel wins over stop, stop over pause, so a late Resume never restarts stopped workers. */
  private update(): void {
    let state: number = Control.RUN;
    if (this.cancelled) state = Control.CANCEL;
    else if (this.stopped) state = Control.STOP;
    else if (this.paused) state = Control.PAUSE;
    Atomics.store(this.word, 0, state);
    Atomics.notify(this.word, 0);
  }

  /** Pass a job's cancel and pause on to the workers until `work` settles. */
  async follow<T>(hooks: JobHooks, work: Promise<T>): Promise<T> {
    const onAbort = (): void => this.cancel();
    hooks.signal.addEventListener('abort', onAbort, { once: true });
    if (hooks.signal.aborted) this.cancel();
    const unsubscribe = hooks.onPauseChange((paused) => {
      this.paused = paused;
      this.update();
    });
    try {
      return await work;
    } finally {
      unsubscribe();
      hooks.signal.removeEventListener('abort', onAbort);
    }
  }
}

/** One scan (search or benchmark) of a nonce range across some workers of the pool. */
class ScanRun {
  readonly control: JobControl;
  private readonly watermarks: number[];
  readonly done: Promise<void>;

  constructor(
    pool: Piscina,
    request: Omit<ScanRequest, 'port' | 'counter' | 'control'>,
    start: number,
    workers: number,
    paused: boolean,
    onReport: (report: ScanReport) => void,
  ) {
    this.control = new JobControl(paused);
    const counter = new BigInt64Array(new SharedArrayBuffer(8));
    counter[0] = BigInt(start);
    this.watermarks = new Array<number>(workers).fill(start);
    const runs: Array<Promise<void>> = [];
    for (let i = 0; i < workers; i++) {
      const { port1, port2 } = new MessageChannel();
      // Reports on one port arrive in order, so the final one means none is still in flight.
      let finalReport: () => void = () => {};
      const finished = new Promise<void>((resolve) => (finalReport = resolve));
      port1.on('message', (report: ScanReport) => {
        this.watermarks[i] = report.watermark;
        onReport(report);
        if (report.final) finalReport();
      });
      const message: ScanRequest = {
        ...request,
        counter: counter.buffer as SharedArrayBuffer,
        control: this.control.buffer,
        port: port2,
      };
      const task = pool.run(message, { transferList: [port2] }) as Promise<number>;
      runs.push(
        task.then(
          () => finished.finally(() => port1.close()),
          (e: unknown) => {
            port1.close();
            // One worker failed: stop its siblings, then fail the job.
            this.control.cancel();
            throw workerFailure(e);
          },
        ),
      );
    }
    this.done = Promise.allSettled(runs).then((results) => {
      const failure = results.find((r) => r.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason;
    });
  }

  /** Lowest nonce not known to be finished: the resume point. */
  nextNonce(): number {
    return Math.min(...this.watermarks);
  }

  stop(): void {
    this.control.stop();
  }

  cancel(): void {
    this.control.cancel();
  }
}

/** Hash rate over the last second or so, across all running jobs. */
class RateMeter {
  private count = 0;
  private since = performance.now();
  rate = 0;

  add(hashes: number): void {
    this.count += hashes;
  }

  /** Returns true when the rate changed. */
  sample(): boolean {
    const now = performance.now();
    const seconds = (now - this.since) / 1000;
    if (seconds < 0.5) return false;
    const rate = this.count / seconds;
    this.count = 0;
    this.since = now;
    if (rate === this.rate) return false;
    this.rate = rate;
    return true;
  }

  set(rate: number): void {
    this.rate = rate;
  }
}

export class SearchSession {
  private pending: SearchJob | undefined;
  private scan: ScanRun | undefined;
  private latest: SearchJob;

  constructor(
    private readonly engine: RandomXEngine,
    private readonly params: SearchParams,
    private readonly hooks: SearchHooks,
    private readonly restored: SearchState | undefined,
  ) {
    this.latest = restored?.job ?? params;
  }

  /** Switch to a new job (Task.Input): the workers drop the old one and take this one. */
  input(job: SearchJob): void {
    this.pending = job;
    this.latest = job;
    this.scan?.stop();
  }

  /** The job the search is on, or will switch to next. */
  get job(): SearchJob {
    return this.latest;
  }

  run(): Promise<SearchResult> {
    return this.engine.runSearch(this);
  }

  /** @internal used by the engine's search loop */
  takePending(): SearchJob | undefined {
    const job = this.pending;
    this.pending = undefined;
    return job;
  }

  /** @internal */
  hasPending(): boolean {
    return this.pending !== undefined;
  }

  /** @internal */
  attach(scan: ScanRun | undefined): void {
    this.scan = scan;
    if (scan && this.pending) scan.stop();
  }

  get parameters(): SearchParams {
    return this.params;
  }

  get jobHooks(): SearchHooks {
    return this.hooks;
  }

  get restoredState(): SearchState | undefined {
    return this.restored;
  }
}

export class RandomXEngine extends EventEmitter {
  readonly threads: number;
  readonly defaultMode: Mode;
  readonly flags: number;
  private readonly useLargePages: boolean;
  private readonly checkpointIntervalMs: number;
  private readonly maxFound: number;
  private workerPool: Piscina | undefined;
  private readonly slots: Slots;
  private readonly resources = new Map<string, KeyResource>();
  private cacheOwner: KeyResource | undefined;
  private datasetOwner: KeyResource | undefined;
  private serials = 0;
  private readonly meter = new RateMeter();
  private activeJobs = 0;
  private meterTimer: NodeJS.Timeout | undefined;
  private readonly activeScans = new Set<ScanRun>();
  private announced: Record<string, string> = {};
  private closed = false;

  constructor(options: EngineOptions = {}) {
    super();
    this.threads = Math.max(1, options.threads ?? os.availableParallelism());
    this.defaultMode = options.defaultMode ?? 'light';
    this.useLargePages = options.largePages ?? true;
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    this.maxFound = options.maxFound ?? LIMITS.maxFound;
    this.flags = native().getFlags();
    this.slots = new Slots(this.threads);
  }

  /**
   * The pool, started on first use so an idle daemon carries no worker threads: one worker
   * per hashing thread and one more for quick Hash calls, all kept for the daemon's life.
   */
  private get pool(): Piscina {
    this.workerPool ??= new Piscina({
      filename: path.join(__dirname, 'worker.js'),
      minThreads: this.threads + 1,
      maxThreads: this.threads + 1,
      concurrentTasksPerWorker: 1,
    });
    return this.workerPool;
  }

  properties(): EngineProperties {
    const owner = this.datasetOwner;
    const cache = this.cacheOwner;
    let flags = this.flags;
    if (cache?.cacheLargePages || owner?.datasetLargePages) flags |= Flag.LARGE_PAGES;
    if (owner?.datasetState === 'ready') flags |= Flag.FULL_MEM;
    return {
      mode: this.defaultMode,
      threads: this.threads,
      datasetState: owner?.datasetState ?? 'none',
      datasetKey: owner && owner.datasetState !== 'none' ? owner.key : Buffer.alloc(0),
      features: featureNames(flags),
      hashRate: this.meter.rate,
    };
  }

  /** The quick path: light mode, or the fast dataset when it is ready for this key. */
  async hash(key: Buffer, input: Buffer): Promise<Buffer> {
    checkKey(key);
    checkInput(input);
    const lease = await this.acquire(key, 'light', 1, undefined);
    try {
      const resource = lease.resource;
      const binding =
        resource.datasetState === 'ready' ? this.binding(resource, 'fast') : lease.binding;
      const out = (await this.run({ op: 'hash', binding, input })) as Uint8Array;
      return Buffer.from(out);
    } finally {
      lease.release();
    }
  }

  async hashBatch(
    key: Buffer,
    inputs: readonly Buffer[],
    options: JobOptions,
    hooks: JobHooks,
  ): Promise<BatchResult> {
    checkKey(key);
    checkBatch(inputs);
    // All the job's threads build a dataset; no more workers than inputs hash.
    const threads = this.cappedThreads(options.threads);
    const releaseSlots = await this.slots.acquire(threads, hooks.signal);
    this.jobStarted();
    try {
      const lease = await this.acquire(key, options.mode, threads, hooks);
      try {
        hooks.setPhase('hashing', inputs.length);
        const workers = Math.min(threads, inputs.length);
        return await this.runBatch(lease.binding, inputs, workers, options.fault, hooks);
      } finally {
        lease.release();
      }
    } finally {
      this.jobEnded();
      releaseSlots();
    }
  }

  search(params: SearchParams, hooks: SearchHooks, restored?: SearchState): SearchSession {
    return new SearchSession(this, params, hooks, restored);
  }

  async benchmark(
    nonces: number,
    options: JobOptions & { key?: Buffer },
    hooks: JobHooks,
  ): Promise<BenchmarkResult> {
    const threads = this.cappedThreads(options.threads);
    const releaseSlots = await this.slots.acquire(threads, hooks.signal);
    this.jobStarted();
    try {
      // A fresh key by default, so the benchmark measures a real cache and dataset build.
      const key = options.key ? checkKey(options.key) : randomBytes(32);
      const t0 = performance.now();
      const lease = await this.acquire(key, options.mode, threads, hooks);
      const initSeconds = (performance.now() - t0) / 1000;
      try {
        hooks.setPhase('hashing', nonces);
        const blob = Buffer.alloc(76, 0x5a);
        let done = 0;
        const t1 = performance.now();
        const scan = new ScanRun(
          this.pool,
          { op: 'scan', binding: lease.binding, blob, nonceOffset: 39, end: nonces, target: null },
          0,
          threads,
          hooks.paused,
          (report) => {
            done += report.hashes;
            this.meter.add(report.hashes);
            hooks.progress(done, nonces);
          },
        );
        await this.follow(scan, hooks);
        const hashSeconds = (performance.now() - t1) / 1000;
        const hashRate = nonces / hashSeconds;
        this.meter.set(hashRate);
        this.announce();
        return {
          hashRate,
          initSeconds,
          cacheSeconds: lease.resource.cacheSeconds,
          datasetSeconds: options.mode === 'fast' ? lease.resource.datasetSeconds : 0,
          hashSeconds,
          mode: options.mode,
          threads,
          nonces,
        };
      } finally {
        lease.release();
      }
    } finally {
      this.jobEnded();
      releaseSlots();
    }
  }

  /** @internal the search loop; see SearchSession */
  async runSearch(session: SearchSession): Promise<SearchResult> {
    const params = session.parameters;
    const hooks = session.jobHooks;
    const threads = this.cappedThreads(params.threads);
    const end = params.startNonce + params.count;
    const state: SearchState = session.restoredState ?? {
      job: {
        key: params.key,
        blob: params.blob,
        nonceOffset: params.nonceOffset,
        difficulty: params.difficulty,
      },
      jobIndex: 0,
      nextNonce: params.startNonce,
      found: [],
      superseded: [],
      hashes: 0,
    };
    const found = new Map<number, Buffer>(state.found.map((f) => [f.nonce, f.hash]));
    const snapshot = (nextNonce: number): SearchState => ({
      ...state,
      nextNonce,
      found: [...found].sort((a, b) => a[0] - b[0]).map(([nonce, hash]) => ({ nonce, hash })),
    });

    const releaseSlots = await this.slots.acquire(threads, hooks.signal);
    this.jobStarted();
    const started = performance.now();
    let hashesThisRun = 0;
    /** Set once `found` reached maxFound: the search ends there rather than grow without bound. */
    let truncated = false;
    try {
      for (;;) {
        const next = session.takePending();
        if (next) {
          for (const [nonce, hash] of found)
            state.superseded.push({ nonce, hash, job: state.jobIndex });
          // Bounded like `found`: the most recent answers of earlier jobs.
          state.superseded.splice(0, Math.max(0, state.superseded.length - this.maxFound));
          found.clear();
          state.job = next;
          state.jobIndex++;
          state.nextNonce = params.startNonce;
          hooks.checkpoint(snapshot(state.nextNonce));
        }
        const lease = await this.acquire(state.job.key, params.mode, threads, hooks);
        try {
          if (session.hasPending()) continue;
          hooks.setPhase('hashing', params.count);
          if (state.nextNonce >= end) break;
          const base = state.nextNonce - params.startNonce;
          let done = 0;
          const scan = new ScanRun(
            this.pool,
            {
              op: 'scan',
              binding: lease.binding,
              blob: state.job.blob,
              nonceOffset: state.job.nonceOffset,
              end,
              target: targetOf(state.job.difficulty),
              fault: params.fault,
            },
            state.nextNonce,
            threads,
            hooks.paused,
            (report) => {
              done += report.hashes;
              state.hashes += report.hashes;
              hashesThisRun += report.hashes;
              this.meter.add(report.hashes);
              for (const [nonce, hash] of report.found) found.set(nonce, Buffer.from(hash));
              hooks.progress(Math.min(base + done, params.count), params.count);
              if (found.size >= this.maxFound && !truncated) {
                truncated = true;
                scan.stop();
              }
            },
          );
          session.attach(scan);
          const timer = setInterval(
            () => hooks.checkpoint(snapshot(scan.nextNonce())),
            this.checkpointIntervalMs,
          );
          try {
            await this.follow(scan, hooks);
          } finally {
            clearInterval(timer);
            session.attach(undefined);
            state.nextNonce = scan.nextNonce();
            if (truncated) {
              // Keep the lowest maxFound answers; resume after the last one kept, so that
              // every nonce below nextNonce is hashed and its answers are all in `found`.
              const kept = [...found.keys()].sort((a, b) => a - b).slice(0, this.maxFound);
              const last = kept[kept.length - 1];
              for (const nonce of [...found.keys()]) if (nonce > last) found.delete(nonce);
              state.nextNonce = Math.min(state.nextNonce, last + 1);
            }
            // Stopped by a daemon shutdown (or cancel): keep the freshest resume point.
            if (hooks.signal.aborted) hooks.checkpoint(snapshot(state.nextNonce));
          }
        } finally {
          lease.release();
        }
        if (hooks.signal.aborted) throw cancelled();
        if (truncated || !session.hasPending()) break;
      }
      const seconds = (performance.now() - started) / 1000;
      return {
        ...snapshot(state.nextNonce),
        truncated,
        mode: params.mode,
        threads,
        hashRate: seconds > 0 ? hashesThisRun / seconds : 0,
      };
    } finally {
      this.jobEnded();
      releaseSlots();
    }
  }

  /** Keys (hex) whose cache is allocated right now, and which of them have a dataset. */
  residentKeys(): Array<{ key: string; dataset: boolean }> {
    return [...this.resources.values()]
      .filter((r) => r.cache !== 0)
      .map((r) => ({ key: r.key.toString('hex'), dataset: r.dataset !== 0 }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const scan of this.activeScans) scan.cancel();
    if (this.meterTimer) clearInterval(this.meterTimer);
    await this.workerPool?.destroy();
    // Workers are gone, so no VM can touch the memory any more.
    for (const resource of this.resources.values()) this.free(resource);
    this.resources.clear();
  }

  private cappedThreads(requested: number): number {
    return Math.max(1, Math.min(requested, this.threads));
  }

  private async run(request: WorkerRequest): Promise<unknown> {
    if (this.closed) throw new VigilError('Failed', 'the RandomX engine is shut down');
    try {
      return await this.pool.run(request);
    } catch (e) {
      throw workerFailure(e);
    }
  }

  private async follow(scan: ScanRun, hooks: JobHooks): Promise<void> {
    this.activeScans.add(scan);
    try {
      await scan.control.follow(hooks, scan.done);
    } finally {
      this.activeScans.delete(scan);
    }
    if (hooks.signal.aborted) throw cancelled();
  }

  private async runBatch(
    binding: Binding,
    inputs: readonly Buffer[],
    threads: number,
    fault: Fault | undefined,
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
      this.meter.add(done - reported);
      reported = done;
      hooks.progress(done, inputs.length);
    };
    const timer = setInterval(report, PROGRESS_POLL_MS);
    const started = performance.now();
    try {
      const request = {
        op: 'hashBatch' as const,
        binding,
        data: data.buffer as SharedArrayBuffer,
        offsets: offsets.buffer as SharedArrayBuffer,
        output: output.buffer as SharedArrayBuffer,
        counters: counters.buffer as SharedArrayBuffer,
        control: control.buffer,
        fault,
      };
      const runs = Array.from({ length: threads }, () =>
        this.run(request).catch((e: unknown) => {
          control.cancel(); // one worker failed: stop its siblings, then fail the job
          throw e;
        }),
      );
      const results = await control.follow(hooks, Promise.allSettled(runs));
      const failure = results.find((r) => r.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason;
      if (hooks.signal.aborted) throw cancelled();
      const hashed = results.reduce(
        (sum, r) => sum + (r.status === 'fulfilled' ? (r.value as HashBatchReply).hashed : 0),
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

  private binding(resource: KeyResource, mode: Mode): Binding {
    return {
      serial: mode === 'fast' ? resource.datasetSerial : resource.serial,
      mode,
      flags: this.flags,
      cache: resource.cache,
      dataset: mode === 'fast' ? resource.dataset : 0,
      largePages: this.useLargePages,
    };
  }

  private async acquire(
    key: Buffer,
    mode: Mode,
    threads: number,
    hooks: JobHooks | undefined,
  ): Promise<Lease> {
    const hex = key.toString('hex');
    let resource = this.resources.get(hex);
    if (!resource) {
      const created = new KeyResource(++this.serials, Buffer.from(key));
      this.resources.set(hex, created);
      created.cacheReady = this.buildCache(created);
      resource = created;
    }
    resource.refs++;
    this.cacheOwner = resource;
    if (mode === 'fast') this.datasetOwner = resource;
    this.sweep();
    const owned = resource;
    const release = once(() => {
      owned.refs--;
      this.sweep();
    });
    try {
      await owned.cacheReady;
      if (hooks?.signal.aborted) throw cancelled();
      if (mode === 'fast') await this.ensureDataset(owned, threads, hooks);
    } catch (e) {
      release();
      throw e;
    }
    return { resource: owned, binding: this.binding(owned, mode), release };
  }

  private async buildCache(resource: KeyResource): Promise<void> {
    const t0 = performance.now();
    try {
      const reply = (await this.run({
        op: 'initCache',
        flags: this.flags,
        key: resource.key,
        largePages: this.useLargePages && freeHugePageBytes() >= CACHE_BYTES,
      })) as InitCacheReply;
      resource.cache = reply.cache;
      resource.cacheLargePages = reply.largePages;
      resource.cacheSeconds = (performance.now() - t0) / 1000;
    } catch (e) {
      this.forget(resource);
      throw e;
    }
  }

  private async ensureDataset(
    resource: KeyResource,
    threads: number,
    hooks: JobHooks | undefined,
  ): Promise<void> {
    if (!hooks) {
      if (resource.datasetState === 'ready') return;
      throw new VigilError('Failed', 'fast mode needs a task');
    }
    // A build whose jobs were all cancelled is winding down: let it end, then build anew,
    // rather than join it and fail as cancelled.
    while (resource.build?.abandoned) {
      await resource.build.promise.catch(() => {});
      if (hooks.signal.aborted) throw cancelled();
    }
    if (resource.datasetState === 'ready') return;
    const items = native().datasetItemCount();
    hooks.setPhase('dataset', items, DATASET_PROGRESS_SHARE);
    if (!resource.build) resource.build = this.startBuild(resource, threads, items);
    await resource.build.join(hooks);
  }

  private startBuild(resource: KeyResource, threads: number, items: number): DatasetBuild {
    const bytes = datasetBytes();
    const available = availableMemoryBytes();
    if (available < bytes + MEMORY_HEADROOM_BYTES) {
      throw new VigilError(
        'Failed',
        `fast mode needs ${Math.ceil(bytes / 2 ** 20)} MiB for its dataset but only ` +
          `${Math.floor(available / 2 ** 20)} MiB are available; use light mode`,
      );
    }
    const rx = native();
    const wantLarge = this.useLargePages && freeHugePageBytes() >= bytes;
    let dataset = wantLarge ? rx.allocDataset(this.flags | Flag.LARGE_PAGES) : 0;
    const largePages = dataset !== 0;
    if (dataset === 0) dataset = rx.allocDataset(this.flags);
    if (dataset === 0) {
      throw new VigilError(
        'Failed',
        `cannot allocate the ${Math.ceil(bytes / 2 ** 20)} MiB fast-mode dataset (out of memory); use light mode`,
      );
    }
    resource.dataset = dataset;
    resource.datasetLargePages = largePages;
    resource.datasetState = 'initializing';
    this.announce();

    const build = new DatasetBuild(items);
    const per = Math.floor(items / threads);
    const t0 = performance.now();
    const parts = Array.from(
      { length: threads },
      (_, i) =>
        this.run({
          op: 'initDataset',
          dataset,
          cache: resource.cache,
          startItem: i * per,
          itemCount: i === threads - 1 ? items - i * per : per,
          control: build.control.buffer as SharedArrayBuffer,
          progress: build.progress.buffer as SharedArrayBuffer,
        }) as Promise<InitDatasetReply>,
    );
    build.promise = Promise.allSettled(parts)
      .then((results) => {
        const failure = results.find((r) => r.status === 'rejected');
        if (failure) throw (failure as PromiseRejectedResult).reason;
        if (!results.every((r) => r.status === 'fulfilled' && r.value.completed)) {
          throw cancelled();
        }
        resource.datasetSeconds = (performance.now() - t0) / 1000;
        resource.datasetSerial = ++this.serials;
        resource.datasetState = 'ready';
      })
      .catch((e: unknown) => {
        // Closing rejects the parts while their threads may still be inside
        // randomx_init_dataset: close() frees the dataset itself once the threads are gone.
        if (this.closed) throw e;
        // Every part has returned, so no worker still writes to the dataset.
        if (resource.dataset !== 0) native().releaseDataset(resource.dataset);
        resource.dataset = 0;
        resource.datasetLargePages = false;
        resource.datasetState = 'none';
        throw e;
      })
      .finally(() => {
        resource.build = undefined;
        this.sweep();
      });
    // Nobody awaits build.promise if the only waiter left already; keep that from being unhandled.
    build.promise.catch(() => {});
    return build;
  }

  /** Emit `changed` with the names of the properties whose values differ from last time. */
  private announce(): void {
    const now = this.properties();
    const values: Record<string, string> = {
      DatasetState: now.datasetState,
      DatasetKey: now.datasetKey.toString('hex'),
      Features: now.features.join(','),
      HashRate: String(now.hashRate),
    };
    const names = Object.keys(values).filter((n) => values[n] !== this.announced[n]);
    this.announced = values;
    if (names.length > 0) this.emit('changed', names);
  }

  /** Free what no job uses and no longer belongs to the current key. */
  private sweep(): void {
    // While closing, workers may still be running; close() frees everything after them.
    if (this.closed) return;
    for (const resource of [...this.resources.values()]) {
      if (resource.refs > 0 || resource.build) continue;
      if (resource !== this.cacheOwner && resource !== this.datasetOwner) {
        this.free(resource);
        this.forget(resource);
      } else if (resource !== this.datasetOwner && resource.dataset !== 0) {
        native().releaseDataset(resource.dataset);
        resource.dataset = 0;
        resource.datasetState = 'none';
      }
    }
    this.announce();
  }

  private free(resource: KeyResource): void {
    const rx = native();
    if (resource.dataset !== 0) rx.releaseDataset(resource.dataset);
    if (resource.cache !== 0) rx.releaseCache(resource.cache);
    resource.dataset = 0;
    resource.cache = 0;
    resource.datasetState = 'none';
  }

  private forget(resource: KeyResource): void {
    const hex = resource.key.toString('hex');
    if (this.resources.get(hex) === resource) this.resources.delete(hex);
    if (this.cacheOwner === resource) this.cacheOwner = undefined;
    if (this.datasetOwner === resource) this.datasetOwner = undefined;
  }

  private jobStarted(): void {
    this.activeJobs++;
    if (!this.meterTimer) {
      this.meterTimer = setInterval(() => {
        if (this.meter.sample()) this.announce();
      }, 1000);
    }
  }

  private jobEnded(): void {
    this.activeJobs--;
    if (this.activeJobs === 0 && this.meterTimer) {
      clearInterval(this.meterTimer);
      this.meterTimer = undefined;
    }
  }
}
