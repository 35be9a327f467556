/**
 * Native cache and dataset lifetime: the 256 MiB cache of each key in use and, in fast mode,
 * its 2080 MiB dataset, shared by every worker by address. A job leases the key's resources;
 * what no job holds and no longer belongs to the current key is freed.
 */
import { performance } from 'node:perf_hooks';
import { VigilError } from '../core/errors';
import { cancelled, once } from './control';
import { DatasetBuild } from './dataset-build';
import type { WorkerPool } from './dispatch';
import { freeHugePageBytes, requireRoomForDataset } from './memory';
import { CACHE_BYTES, Flag, datasetBytes, native, type Address } from './native';
import type { Binding, InitCacheReply, InitDatasetReply, Mode } from './protocol';
import type { DatasetState, JobHooks } from './types';

/**
 * The part of a fast job's Progress given to building its dataset (about as long as hashing a
 * few thousand nonces on this kind of machine); hashing fills the rest.
 */
const DATASET_PROGRESS_SHARE = 0.5;

/** The cache of one key and, in fast mode, its dataset. */
export class KeyResource {
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

export interface Lease {
  resource: KeyResource;
  binding: Binding;
  release: () => void;
}

export interface ResourceOptions {
  pool: WorkerPool;
  /** randomx_get_flags(), without FULL_MEM and LARGE_PAGES. */
  flags: number;
  /** Reserved huge pages may be used when free. */
  largePages: boolean;
  /** Called whenever what is resident (or its state) may have changed. */
  onChange: () => void;
}

export class KeyResources {
  private readonly resources = new Map<string, KeyResource>();
  /** The key of the last job or Hash: its cache is kept after the job. */
  private cacheOwner: KeyResource | undefined;
  /** The key of the last fast job: its dataset is kept after the job. */
  private datasetOwner: KeyResource | undefined;
  private serials = 0;
  private closed = false;

  constructor(private readonly options: ResourceOptions) {}

  /** The resource whose dataset is current (the `DatasetState`/`DatasetKey` properties). */
  get currentDataset(): KeyResource | undefined {
    return this.datasetOwner;
  }

  get currentCache(): KeyResource | undefined {
    return this.cacheOwner;
  }

  /**
   * The key's cache (and, in fast mode, its dataset) for one job, built if needed. Without
   * hooks (quick Hash) fast mode is refused unless the dataset is ready.
   */
  async acquire(
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

  binding(resource: KeyResource, mode: Mode): Binding {
    return {
      serial: mode === 'fast' ? resource.datasetSerial : resource.serial,
      mode,
      flags: this.options.flags,
      cache: resource.cache,
      dataset: mode === 'fast' ? resource.dataset : 0,
      largePages: this.options.largePages,
    };
  }

  /** Keys (hex) whose cache is allocated right now, and which of them have a dataset. */
  resident(): Array<{ key: string; dataset: boolean }> {
    return [...this.resources.values()]
      .filter((r) => r.cache !== 0)
      .map((r) => ({ key: r.key.toString('hex'), dataset: r.dataset !== 0 }));
  }

  /** From now on nothing is freed behind the workers' backs; `freeAll` does it after them. */
  closing(): void {
    this.closed = true;
  }

  /** Free everything; only once no worker can touch the memory any more. */
  freeAll(): void {
    for (const resource of this.resources.values()) this.free(resource);
    this.resources.clear();
  }

  private async buildCache(resource: KeyResource): Promise<void> {
    const t0 = performance.now();
    try {
      const reply = await this.options.pool.run<InitCacheReply>({
        op: 'initCache',
        flags: this.options.flags,
        key: resource.key,
        largePages: this.options.largePages && freeHugePageBytes() >= CACHE_BYTES,
      });
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

  private allocateDataset(resource: KeyResource): void {
    const bytes = datasetBytes();
    requireRoomForDataset(bytes);
    const rx = native();
    const flags = this.options.flags;
    const wantLarge = this.options.largePages && freeHugePageBytes() >= bytes;
    let dataset = wantLarge ? rx.allocDataset(flags | Flag.LARGE_PAGES) : 0;
    const largePages = dataset !== 0;
    if (dataset === 0) dataset = rx.allocDataset(flags);
    if (dataset === 0) {
      throw new VigilError(
        'Failed',
        `cannot allocate the ${Math.ceil(bytes / 2 ** 20)} MiB fast-mode dataset (out of memory); use light mode`,
      );
    }
    resource.dataset = dataset;
    resource.datasetLargePages = largePages;
  }

  private startBuild(resource: KeyResource, threads: number, items: number): DatasetBuild {
    this.allocateDataset(resource);
    resource.datasetState = 'initializing';
    this.options.onChange();

    const build = new DatasetBuild(items);
    const per = Math.floor(items / threads);
    const t0 = performance.now();
    const parts = Array.from({ length: threads }, (_, i) =>
      this.options.pool.run<InitDatasetReply>({
        op: 'initDataset',
        dataset: resource.dataset,
        cache: resource.cache,
        startItem: i * per,
        itemCount: i === threads - 1 ? items - i * per : per,
        control: build.control.buffer as SharedArrayBuffer,
        progress: build.progress.buffer as SharedArrayBuffer,
      }),
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
        // randomx_init_dataset: freeAll() frees the dataset itself once the threads are gone.
        if (this.closed) throw e;
        // Every part has returned, so no worker still writes to the dataset.
        this.releaseDataset(resource);
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

  /** Free what no job uses and no longer belongs to the current key. */
  private sweep(): void {
    // While closing, workers may still be running; freeAll() frees everything after them.
    if (this.closed) return;
    for (const resource of [...this.resources.values()]) {
      if (resource.refs > 0 || resource.build) continue;
      if (resource !== this.cacheOwner && resource !== this.datasetOwner) {
        this.free(resource);
        this.forget(resource);
      } else if (resource !== this.datasetOwner && resource.dataset !== 0) {
        this.releaseDataset(resource);
      }
    }
    this.options.onChange();
  }

  private releaseDataset(resource: KeyResource): void {
    if (resource.dataset !== 0) native().releaseDataset(resource.dataset);
    resource.dataset = 0;
    resource.datasetLargePages = false;
    resource.datasetState = 'none';
  }

  private free(resource: KeyResource): void {
    this.releaseDataset(resource);
    if (resource.cache !== 0) native().releaseCache(resource.cache);
    resource.cache = 0;
  }

  private forget(resource: KeyResource): void {
    const hex = resource.key.toString('hex');
    if (this.resources.get(hex) === resource) this.resources.delete(hex);
    if (this.cacheOwner === resource) this.cacheOwner = undefined;
    if (this.datasetOwner === resource) this.datasetOwner = undefined;
  }
}
