/**
 * The RandomX engine: the worker pool, the hashing slots, the per-key native resources and
 * the engine-wide properties, with the jobs (batch-job, search-job, benchmark-job) run on
 * them. Logic only: no bus here, so it is testable on its own. Its callers pass typed params
 * that params.ts has checked; nothing here checks them again.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { runBatch } from './batch-job';
import { DatasetStore } from './dataset-store';
import { runBenchmark } from './benchmark-job';
import { WorkerPool } from './dispatch';
import type { JobRuntime, RunningJob } from './job-runtime';
import { Flag, featureNames, native } from './native';
import type { Mode } from './protocol';
import { RateMeter } from './rate-meter';
import { KeyResources } from './resources';
import { SearchSession } from './search-job';
import { Slots } from './slots';
import type {
  BatchResult,
  BenchmarkParams,
  BenchmarkResult,
  EngineProperties,
  JobHooks,
  JobOptions,
  SearchHooks,
  SearchParams,
  SearchState,
} from './types';
import { LIMITS } from './validate';

export type * from './types';
export { SearchSession } from './search-job';

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 2000;

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
  /** The worker script (default: worker.js beside this file). */
  workerFile?: string;
  /** The dataset cache directory; without it built datasets are not kept. */
  cacheDir?: string;
  /** How many datasets the cache directory keeps (default 1; 0 keeps none). */
  datasetCache?: number;
}

/**
 * Nice value of the background worker (the conventional `nice` increment). Against a hashing
 * thread at 0 on the same core, the scheduler gives it about a tenth of that core (weights 110
 * against 1024): a job hashing on every core loses about 5 % of its rate while a next key's
 * dataset is built (some 45 CPU-seconds: about 7 minutes on two busy cores), and a free core it
 * takes whole. At 19 (a seventieth of a core) such a build took most of an hour.
 */
const BACKGROUND_NICE = 10;

/**
 * Nice value of the worker that writes built datasets to the cache directory. A write is
 * about 1 CPU-second (direct I/O), with no deadline: at 19 it takes a seventieth of a busy
 * core (so a job hashing on every core loses under 1 % while it lasts, about a minute here)
 * and a free core whole. A worker of its own, so that a next key's preparation never waits
 * behind a write.
 */
const WRITER_NICE = 19;

export class RandomXEngine extends EventEmitter implements JobRuntime {
  readonly threads: number;
  readonly defaultMode: Mode;
  readonly flags: number;
  readonly checkpointIntervalMs: number;
  readonly maxFound: number;
  readonly pool: WorkerPool;
  readonly background: WorkerPool;
  readonly writer: WorkerPool;
  readonly resources: KeyResources;
  readonly meter = new RateMeter();
  private readonly slots: Slots;
  private activeJobs = 0;
  private meterTimer: NodeJS.Timeout | undefined;
  private announced: Record<string, string> = {};
  private closed = false;

  constructor(options: EngineOptions = {}) {
    super();
    this.threads = Math.max(1, options.threads ?? os.availableParallelism());
    this.defaultMode = options.defaultMode ?? 'light';
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    this.maxFound = options.maxFound ?? LIMITS.maxFound;
    this.flags = native().getFlags();
    this.slots = new Slots(this.threads);
    // One worker per hashing thread and one more for quick Hash calls, started on first use
    // so an idle daemon carries no worker threads.
    this.pool = new WorkerPool(this.threads + 1, { file: options.workerFile });
    // Low-priority workers, only while there is background work: one for next-key datasets,
    // one for writing built datasets to the cache directory.
    this.background = new WorkerPool(1, {
      file: options.workerFile,
      nice: BACKGROUND_NICE,
      transient: true,
    });
    this.writer = new WorkerPool(1, {
      file: options.workerFile,
      nice: WRITER_NICE,
      transient: true,
    });
    const keep = options.datasetCache ?? 1;
    const store =
      options.cacheDir !== undefined && keep > 0
        ? new DatasetStore(options.cacheDir, keep)
        : undefined;
    this.resources = new KeyResources({
      pool: this.pool,
      background: this.background,
      writer: this.writer,
      flags: this.flags,
      largePages: options.largePages ?? true,
      store,
      onChange: () => this.announce(),
    });
  }

  properties(): EngineProperties {
    const dataset = this.resources.currentDataset;
    const cache = this.resources.currentCache;
    let flags = this.flags;
    const pages = dataset?.datasetPages;
    if (cache?.cacheLargePages || pages === 'large-pages') flags |= Flag.LARGE_PAGES;
    if (dataset?.datasetState === 'ready') flags |= Flag.FULL_MEM;
    const features = featureNames(flags);
    const coverage = dataset?.hugePageCoverage ?? 0;
    const datasetThp = pages === 'transparent-huge-pages' && coverage > 0;
    if (datasetThp || (cache?.cacheHugePages ?? 0) > 0) features.push('transparent-huge-pages');
    return {
      mode: this.defaultMode,
      threads: this.threads,
      datasetState: dataset?.datasetState ?? 'none',
      datasetKey: dataset && dataset.datasetState !== 'none' ? dataset.key : Buffer.alloc(0),
      features,
      hashRate: this.meter.rate,
      hugePageCoverage: coverage,
    };
  }

  /** The quick path: light mode, or the fast dataset when it is ready for this key. */
  async hash(key: Buffer, input: Buffer): Promise<Buffer> {
    const lease = await this.resources.acquire(key, 'light', 1, undefined);
    try {
      const resource = lease.resource;
      const binding =
        resource.datasetState === 'ready'
          ? this.resources.binding(resource, 'fast')
          : lease.binding;
      return Buffer.from(await this.pool.run<Uint8Array>({ op: 'hash', binding, input }));
    } finally {
      lease.release();
    }
  }

  hashBatch(
    key: Buffer,
    inputs: readonly Buffer[],
    options: JobOptions,
    hooks: JobHooks,
  ): Promise<BatchResult> {
    return runBatch(this, { key, inputs, ...options }, hooks);
  }

  search(params: SearchParams, hooks: SearchHooks, restored?: SearchState): SearchSession {
    return new SearchSession(this, params, hooks, restored);
  }

  benchmark(params: BenchmarkParams, hooks: JobHooks): Promise<BenchmarkResult> {
    return runBenchmark(this, params, hooks);
  }

  /** Keys (hex) whose cache is allocated right now, and which of them have a dataset. */
  residentKeys(): Array<{ key: string; dataset: boolean }> {
    return this.resources.resident();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.meterTimer) clearInterval(this.meterTimer);
    this.resources.closing();
    await Promise.all([this.pool.close(), this.background.close(), this.writer.close()]);
    // Workers are gone, so no VM can touch the memory any more.
    this.resources.freeAll();
  }

  async start(threads: number, signal: AbortSignal): Promise<RunningJob> {
    const capped = Math.max(1, Math.min(threads, this.threads));
    const release = await this.slots.acquire(capped, signal);
    this.jobStarted();
    return {
      threads: capped,
      end: () => {
        this.jobEnded();
        release();
      },
    };
  }

  /** Emit `changed` with the names of the properties whose values differ from last time. */
  announce(): void {
    const now = this.properties();
    const values: Record<string, string> = {
      DatasetState: now.datasetState,
      DatasetKey: now.datasetKey.toString('hex'),
      Features: now.features.join(','),
      HashRate: String(now.hashRate),
      HugePageCoverage: String(now.hugePageCoverage),
    };
    const names = Object.keys(values).filter((n) => values[n] !== this.announced[n]);
    this.announced = values;
    if (names.length > 0) this.emit('changed', names);
  }

  private jobStarted(): void {
    this.activeJobs++;
    if (!this.meterTimer) {
      this.meterTimer = setInterval(() => {
        this.resources.refreshCoverage();
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
