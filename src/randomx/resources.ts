/**
 * Native cache and dataset lifetime: the 256 MiB cache of each key in use and, in fast mode,
 * its 2080 MiB dataset, shared by every worker by address. A job leases the key's resources;
 * what no job holds and no longer belongs to the current key is freed. A dataset is filled
 * from its file in the dataset cache when there is a good one, built otherwise (then written
 * out in the background), and may be prepared in the background for a coming key switch.
 */
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { VigilError, messageOf } from '../core/errors';
import { log } from '../core/log';
import { cancelled, once } from './control';
import { DatasetBuild } from './dataset-build';
import { HEADER_BYTES, decodeHeader, sha256, type DatasetFileHeader } from './dataset-file';
import type { DatasetStore } from './dataset-store';
import type { WorkerPool } from './dispatch';
import { adviseHugePages, hugePageCoverage, thpMode } from './hugepages';
import { CACHE_BYTES, DATASET_ITEM_SIZE, Flag, datasetBytes, native, type Address } from './native';
import { freeHugePageBytes, hasRoomFor, requireRoomForDataset } from './memory';
import {
  Control,
  type Binding,
  type AllocCacheReply,
  type InitDatasetReply,
  type LoadDatasetReply,
  type Mode,
  type SaveDatasetReply,
  type VerifyItemsReply,
} from './protocol';
import type { DatasetSource, DatasetState, JobHooks } from './types';

/**
 * The part of a fast job's Progress given to building its dataset (about as long as hashing a
 * few thousand nonces on this kind of machine); hashing fills the rest.
 */
const DATASET_PROGRESS_SHARE = 0.5;

/** Items of a loaded dataset recomputed from the cache and compared, at random positions. */
const VERIFIED_ITEMS = 512;

/** What backs a dataset: reserved huge pages, transparent ones asked for, or plain pages. */
export type PageKind = 'large-pages' | 'transparent-huge-pages' | 'small';

/** How often the huge-page share of a live dataset is read again (the kernel may change it). */
const COVERAGE_REFRESH_MS = 10_000;

/** The cache of one key and, in fast mode, its dataset. */
export class KeyResource {
  cache: Address = 0;
  cacheLargePages = false;
  /** Share of the cache in transparent huge pages, read once it is built. */
  cacheHugePages = 0;
  /** Settles once the cache's memory exists (it is filled after, see cacheReady). */
  cacheAllocated: Promise<void> = Promise.resolve();
  /** Settles once the cache is filled from the key. */
  cacheReady: Promise<void> = Promise.resolve();
  /** A worker is filling the cache: its memory must not be freed under it. */
  cacheFilling = false;
  cacheFilled = false;
  /** Where the cache's memory is, when it was advised for transparent huge pages; else 0. */
  cacheAdvised: Address = 0;
  cacheSeconds = 0;
  dataset: Address = 0;
  datasetPages: PageKind = 'small';
  /** Share of the dataset backed by huge pages, as last read from /proc/self/smaps. */
  hugePageCoverage = 0;
  coverageSampled = 0;
  datasetState: DatasetState = 'none';
  datasetSource: DatasetSource | undefined;
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

/** A next key's dataset being prepared in the background. */
export interface Preparation {
  readonly key: Buffer;
  /** Settles when the dataset is ready (or the preparation failed or was let go). */
  readonly ready: Promise<void>;
  release(): void;
}

export interface ResourceOptions {
  /** The hashing workers (and the one for quick Hash). */
  pool: WorkerPool;
  /** One low-priority worker for next-key datasets. */
  background: WorkerPool;
  /** One lowest-priority worker writing built datasets to the cache directory. */
  writer: WorkerPool;
  /** randomx_get_flags(), without FULL_MEM and LARGE_PAGES. */
  flags: number;
  /** Huge pages (reserved ones when free, transparent ones otherwise) may be used. */
  largePages: boolean;
  /** Where built datasets are kept across restarts; absent when `dataset_cache = 0`. */
  store: DatasetStore | undefined;
  /** Called whenever what is resident (or its state) may have changed. */
  onChange: () => void;
}

/** How a dataset file was moved, for the log lines. */
const ioPath = (direct: boolean): string => (direct ? 'direct I/O' : 'through the page cache');

/** A job-like owner for background work: nobody pauses it, its progress goes nowhere. */
function backgroundHooks(signal: AbortSignal): JobHooks {
  return {
    signal,
    paused: false,
    onPauseChange: () => () => {},
    progress: () => {},
    setPhase: () => {},
  };
}

export class KeyResources {
  private readonly resources = new Map<string, KeyResource>();
  /** The key of the last job or Hash: its cache is kept after the job. */
  private cacheOwner: KeyResource | undefined;
  /** The key of the last fast job: its dataset is kept after the job. */
  private datasetOwner: KeyResource | undefined;
  private serials = 0;
  private closed = false;
  private thp: boolean | undefined;
  /** Control words of background writes, so close() can stop them. */
  private readonly writes = new Set<Int32Array>();

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
    const resource = this.resourceFor(key, this.options.pool);
    resource.refs++;
    this.cacheOwner = resource;
    if (mode === 'fast') this.datasetOwner = resource;
    this.sweep();
    const release = once(() => {
      resource.refs--;
      this.sweep();
    });
    try {
      // The cache's memory first, so that a dataset that does not fit fails its own
      // allocation; but a dataset loaded from its file needs the filled cache only to be
      // verified, so the load runs while the cache is filled (a warm start's two big parts
      // overlap on the cores). A build waits for the cache.
      await resource.cacheAllocated;
      if (hooks?.signal.aborted) throw cancelled();
      if (mode === 'fast') await this.ensureDataset(resource, threads, hooks);
      await resource.cacheReady;
      if (hooks?.signal.aborted) throw cancelled();
    } catch (e) {
      release();
      throw e;
    }
    return { resource, binding: this.binding(resource, mode), release };
  }

  /**
   * Load or build `key`'s dataset in the background, on the low-priority worker, for a job
   * that will switch to that key. Returns what lets go of it, or undefined (and says why in
   * the log) when the memory for a second dataset is not there.
   */
  prepare(key: Buffer): Preparation | undefined {
    const existing = this.resources.get(key.toString('hex'));
    const needed = (existing?.cache ? 0 : CACHE_BYTES) + (existing?.dataset ? 0 : datasetBytes());
    if (needed > 0 && !hasRoomFor(needed)) {
      log.notice(
        `not enough memory to prepare the next key's dataset in the background ` +
          `(${Math.ceil(needed / 2 ** 20)} MiB more); the switch will build it`,
      );
      return undefined;
    }
    const resource = this.resourceFor(key, this.options.background);
    resource.refs++;
    const abort = new AbortController();
    const hooks = backgroundHooks(abort.signal);
    const ready = (async () => {
      await resource.cacheAllocated;
      while (resource.build?.abandoned) await resource.build.promise.catch(() => {});
      if (abort.signal.aborted || resource.datasetState === 'ready') return;
      resource.build ??= this.startFill(resource, 1, this.options.background);
      await resource.build.join(hooks);
      log.info(`the next key's dataset is ready (${resource.datasetSource ?? 'built'})`);
    })();
    ready.catch((e: unknown) => {
      if (!abort.signal.aborted)
        log.warning(`preparing the next key's dataset failed: ${messageOf(e)}`);
    });
    log.info(`preparing the dataset of the next key in the background`);
    return {
      key: resource.key,
      ready,
      release: once(() => {
        abort.abort();
        resource.refs--;
        this.sweep();
      }),
    };
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
    for (const control of this.writes) {
      Atomics.store(control, 0, Control.CANCEL);
      Atomics.notify(control, 0);
    }
  }

  /** Free everything; only once no worker can touch the memory any more. */
  freeAll(): void {
    for (const resource of this.resources.values()) this.free(resource);
    this.resources.clear();
  }

  /** Read again how much of the current dataset is in huge pages, at most every 10 s. */
  refreshCoverage(force = false): void {
    const resource = this.datasetOwner;
    if (!resource || resource.dataset === 0 || resource.datasetState !== 'ready') return;
    const now = performance.now();
    if (!force && now - resource.coverageSampled < COVERAGE_REFRESH_MS) return;
    resource.coverageSampled = now;
    resource.hugePageCoverage =
      resource.datasetPages === 'large-pages'
        ? 1
        : hugePageCoverage(native().datasetMemory(resource.dataset), datasetBytes());
  }

  /** Huge pages may be asked for: `large_pages` is on and the kernel has THP. */
  private get transparentHugePages(): boolean {
    this.thp ??= this.options.largePages && thpMode() !== 'never';
    return this.thp;
  }

  private resourceFor(key: Buffer, cachePool: WorkerPool): KeyResource {
    const hex = key.toString('hex');
    let resource = this.resources.get(hex);
    if (!resource) {
      resource = new KeyResource(++this.serials, Buffer.from(key));
      this.resources.set(hex, resource);
      const cache = resource;
      resource.cacheAllocated = this.allocateCache(resource, cachePool);
      resource.cacheReady = resource.cacheAllocated.then(() => this.fillCache(cache, cachePool));
      // Awaited later by each user (a load awaits the fill only to verify): never unhandled.
      resource.cacheAllocated.catch(() => {});
      resource.cacheReady.catch(() => {});
    }
    return resource;
  }

  private async allocateCache(resource: KeyResource, pool: WorkerPool): Promise<void> {
    try {
      const reply = await pool.run<AllocCacheReply>({
        op: 'allocCache',
        flags: this.options.flags,
        largePages: this.options.largePages && freeHugePageBytes() >= CACHE_BYTES,
        transparentHugePages: this.transparentHugePages,
      });
      resource.cache = reply.cache;
      resource.cacheLargePages = reply.largePages;
      resource.cacheAdvised = reply.advised;
    } catch (e) {
      this.forget(resource);
      throw e;
    }
  }

  private async fillCache(resource: KeyResource, pool: WorkerPool): Promise<void> {
    const t0 = performance.now();
    resource.cacheFilling = true;
    try {
      await pool.run({ op: 'initCache', cache: resource.cache, key: resource.key });
    } catch (e) {
      // Only a worker that died (or was stopped by close()) gets here: the cache may be half
      // filled, so the key starts afresh next time. Its memory is left alone, as a load into
      // this key's dataset may still be running beside it.
      resource.cacheFilling = false;
      this.forget(resource);
      throw e;
    }
    resource.cacheFilling = false;
    resource.cacheFilled = true;
    if (resource.cacheAdvised !== 0)
      resource.cacheHugePages = hugePageCoverage(resource.cacheAdvised, CACHE_BYTES);
    resource.cacheSeconds = (performance.now() - t0) / 1000;
    this.sweep();
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
    await this.options.pool.started();
    // A build whose jobs were all cancelled is winding down: let it end, then build anew,
    // rather than join it and fail as cancelled.
    while (resource.build?.abandoned) {
      await resource.build.promise.catch(() => {});
      if (hooks.signal.aborted) throw cancelled();
    }
    if (resource.datasetState === 'ready') return;
    const items = native().datasetItemCount();
    hooks.setPhase('dataset', items, DATASET_PROGRESS_SHARE);
    if (resource.build) {
      // Prepared in the background: the job's own workers, idle until it is done, help.
      resource.build.help(this.options.pool, threads);
    } else {
      resource.build = this.startFill(resource, threads, this.options.pool);
    }
    await resource.build.join(hooks);
  }

  /**
   * Reserved huge pages when enough are free; otherwise plain memory with transparent huge
   * pages asked for before anything is written to it. `large_pages = no` turns both off.
   */
  private allocateDataset(resource: KeyResource): void {
    const bytes = datasetBytes();
    // A cache still being filled has not touched its memory yet: count it too.
    requireRoomForDataset(bytes, resource.cacheFilled ? 0 : CACHE_BYTES);
    const rx = native();
    const flags = this.options.flags;
    const reserved = this.options.largePages && freeHugePageBytes() >= bytes;
    let dataset = reserved ? rx.allocDataset(flags | Flag.LARGE_PAGES) : 0;
    let pages: PageKind = 'large-pages';
    if (dataset === 0) {
      dataset = rx.allocDataset(flags);
      pages = 'small';
      if (dataset !== 0 && this.transparentHugePages) {
        if (adviseHugePages(rx.datasetMemory(dataset), bytes) > 0) pages = 'transparent-huge-pages';
      }
    }
    if (dataset === 0) {
      throw new VigilError(
        'Failed',
        `cannot allocate the ${Math.ceil(bytes / 2 ** 20)} MiB fast-mode dataset (out of memory); use light mode`,
      );
    }
    resource.dataset = dataset;
    resource.datasetPages = pages;
    resource.hugePageCoverage = 0;
    resource.coverageSampled = 0;
  }

  /** Fill a new dataset for `resource`: from its file if a good one exists, else by building. */
  private startFill(resource: KeyResource, workers: number, pool: WorkerPool): DatasetBuild {
    this.allocateDataset(resource);
    resource.datasetState = 'initializing';
    this.options.onChange();
    const build = new DatasetBuild(native().datasetItemCount());
    const t0 = performance.now();
    build.promise = (async () => {
      const store = this.options.store;
      const file = store?.find(resource.key);
      if (store && !file) log.info(`dataset cache: nothing kept for this key in ${store.dir}`);
      let source: DatasetSource = 'built';
      const loaded = file ? await this.loadFile(resource, build, file, workers, pool) : undefined;
      if (loaded) {
        source = 'cache';
        const seconds = ((performance.now() - t0) / 1000).toFixed(2);
        log.info(`dataset cache: loaded ${file} in ${seconds} s (${loaded})`);
      } else {
        await this.buildItems(resource, build, workers, pool);
      }
      resource.datasetSeconds = (performance.now() - t0) / 1000;
      resource.datasetSerial = ++this.serials;
      resource.datasetSource = source;
      resource.datasetState = 'ready';
      if (resource === this.datasetOwner) this.refreshCoverage(true);
      if (source === 'built') this.save(resource);
    })()
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

  private async buildItems(
    resource: KeyResource,
    build: DatasetBuild,
    workers: number,
    pool: WorkerPool,
  ): Promise<void> {
    await resource.cacheReady;
    build.run(
      pool,
      {
        op: 'initDataset',
        dataset: resource.dataset,
        cache: resource.cache,
        itemCount: build.items,
        ...build.words,
      },
      workers,
    );
    const results = await build.settled<InitDatasetReply>();
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
    if (Atomics.load(build.progress, 0) !== build.items) throw cancelled();
  }

  /**
   * Fill the dataset from `file`, each segment checked against the header's checksum, then
   * items at random positions recomputed from the cache. Where the time went, or undefined
   * (the file deleted, the fill reset for a build) if anything does not hold.
   */
  private async loadFile(
    resource: KeyResource,
    build: DatasetBuild,
    file: string,
    workers: number,
    pool: WorkerPool,
  ): Promise<string | undefined> {
    const store = this.options.store as DatasetStore;
    const itemBytes = build.items * DATASET_ITEM_SIZE;
    let header: DatasetFileHeader | string;
    try {
      header = await readHeader(file, resource.key, build.items, itemBytes);
    } catch (e) {
      store.discard(file, `cannot be read (${messageOf(e)})`);
      return undefined;
    }
    if (typeof header === 'string') {
      store.discard(file, header);
      return undefined;
    }
    const t0 = performance.now();
    build.run(
      pool,
      {
        op: 'loadDataset',
        path: file,
        dataset: resource.dataset,
        itemBytes,
        segmentBytes: header.segmentBytes,
        digests: header.segments,
        checksumKey: header.checksumKey,
        ...build.words,
      },
      workers,
    );
    const results = await build.settled<LoadDatasetReply>();
    // Workers stopped by a shutdown say nothing about the file: keep it.
    if (this.closed) throw cancelled();
    const failure = results.find((r) => r.status === 'rejected');
    const corrupt = results.find((r) => r.status === 'fulfilled' && r.value.corrupt);
    let reason: string | undefined;
    if (failure)
      reason = `cannot be read (${messageOf((failure as PromiseRejectedResult).reason)})`;
    else if (corrupt) reason = (corrupt as PromiseFulfilledResult<LoadDatasetReply>).value.corrupt;
    else if (Atomics.load(build.progress, 0) !== build.items) throw cancelled();
    const reject = (why: string): undefined => {
      store.discard(file, why);
      build.restart();
      return undefined;
    };
    if (reason !== undefined) return reject(reason);
    const read = (performance.now() - t0) / 1000;
    await resource.cacheReady;
    const t1 = performance.now();
    reason = await this.verify(resource, build.items, pool);
    if (reason !== undefined) return reject(reason);
    const replies = results.map((r) => (r as PromiseFulfilledResult<LoadDatasetReply>).value);
    const cpu = replies.reduce((sum, r) => sum + r.cpuSeconds, 0);
    return (
      `read and checksummed by ${replies.length} workers in ${read.toFixed(2)} s, ` +
      `${cpu.toFixed(2)} CPU s; the key's cache filled beside it in ` +
      `${resource.cacheSeconds.toFixed(2)} s; ${VERIFIED_ITEMS + 2} items recomputed in ` +
      `${((performance.now() - t1) / 1000).toFixed(3)} s; ` +
      ioPath(replies.every((r) => r.direct))
    );
  }

  /** Recompute items at random positions (and both ends) and compare; the reason if not equal. */
  private async verify(
    resource: KeyResource,
    items: number,
    pool: WorkerPool,
  ): Promise<string | undefined> {
    const positions = [
      0,
      items - 1,
      ...Array.from({ length: VERIFIED_ITEMS }, () => randomInt(items)),
    ];
    const reply = await pool.run<VerifyItemsReply>({
      op: 'verifyItems',
      dataset: resource.dataset,
      cache: resource.cache,
      items: positions,
    });
    if (reply.mismatches.length === 0) return undefined;
    return `${reply.mismatches.length} of ${positions.length} items checked differ from the key's (item ${reply.mismatches[0]} first)`;
  }

  /** Write a built dataset to the dataset cache, in the background, keeping it alive meanwhile. */
  private save(resource: KeyResource): void {
    const store = this.options.store;
    if (!store || this.closed) return;
    const finalPath = store.pathFor(resource.key);
    const tempPath = store.tempPathFor(resource.key);
    try {
      store.prepareWrite();
    } catch (e) {
      log.warning(`dataset cache: cannot create ${store.dir}: ${messageOf(e)}`);
      return;
    }
    const control = new Int32Array(new SharedArrayBuffer(4));
    const t0 = performance.now();
    resource.refs++;
    this.writes.add(control);
    // Room first: a full directory holds `limit` files besides this one at most.
    store.evict(store.limit - 1, finalPath);
    this.options.writer
      .run<SaveDatasetReply>({
        op: 'saveDataset',
        dataset: resource.dataset,
        itemBytes: datasetBytes(),
        keyHash: sha256(resource.key),
        tempPath,
        finalPath,
        control: control.buffer as SharedArrayBuffer,
      })
      .then(
        (reply) => {
          if (!reply.saved) return;
          const seconds = ((performance.now() - t0) / 1000).toFixed(1);
          log.info(
            `dataset cache: saved ${finalPath} in ${seconds} s ` +
              `(${ioPath(reply.direct)}, ${reply.cpuSeconds.toFixed(2)} CPU s)`,
          );
          store.evict(store.limit);
        },
        (e: unknown) => {
          log.warning(`dataset cache: cannot write ${finalPath}: ${messageOf(e)}`);
          fs.rmSync(tempPath, { force: true });
        },
      )
      .finally(() => {
        this.writes.delete(control);
        resource.refs--;
        this.sweep();
      });
  }

  /** Free what no job uses and no longer belongs to the current key. */
  private sweep(): void {
    // While closing, workers may still be running; freeAll() frees everything after them.
    if (this.closed) return;
    for (const resource of [...this.resources.values()]) {
      if (resource.refs > 0 || resource.build || resource.cacheFilling) continue;
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
    resource.datasetPages = 'small';
    resource.hugePageCoverage = 0;
    resource.datasetSource = undefined;
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

/** A dataset file's header, checked against the key and the size this library builds. */
async function readHeader(
  file: string,
  key: Buffer,
  itemCount: number,
  itemBytes: number,
): Promise<DatasetFileHeader | string> {
  const handle = await fs.promises.open(file, 'r');
  try {
    // Read first: what is not a readable file fails here, as unreadable.
    const data = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(data, 0, HEADER_BYTES, 0);
    const { size } = await handle.stat();
    if (size !== HEADER_BYTES + itemBytes) {
      return `it is truncated or padded (${size} bytes, not ${HEADER_BYTES + itemBytes})`;
    }
    return decodeHeader(data.subarray(0, bytesRead), {
      keyHash: sha256(key),
      itemSize: DATASET_ITEM_SIZE,
      itemCount,
    });
  } finally {
    await handle.close();
  }
}
