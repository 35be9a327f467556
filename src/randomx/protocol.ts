/** Messages between the engine (main thread) and the pool's workers (src/randomx/worker.ts). */
import type { MessagePort } from 'node:worker_threads';
import type { Address } from './native';

export type Mode = 'light' | 'fast';
export const MODES: readonly Mode[] = ['light', 'fast'];

/** The shared cache (and dataset in fast mode) a worker binds its one VM to. */
export interface Binding {
  /** Unique per cache/dataset generation: a new serial always gets a fresh VM, never a stale one. */
  readonly serial: number;
  readonly mode: Mode;
  /** Flags of randomx_get_flags(), without FULL_MEM and LARGE_PAGES. */
  readonly flags: number;
  readonly cache: Address;
  readonly dataset: Address;
  /** Try large pages for the VM scratchpad (silently skipped when none are free). */
  readonly largePages: boolean;
}

/** Word 0 of a job's control array (Int32Array over a SharedArrayBuffer), set by the engine. */
export const Control = { RUN: 0, PAUSE: 1, STOP: 2, CANCEL: 3 } as const;

/** Workers flush progress about this often, never per hash. */
export const REPORT_INTERVAL_MS = 100;

/** Allocate a key's cache (filled by InitCacheRequest), so that it exists before a dataset. */
export interface AllocCacheRequest {
  op: 'allocCache';
  flags: number;
  largePages: boolean;
  /** Without reserved pages, advise the cache's memory for transparent huge pages. */
  transparentHugePages: boolean;
}
export interface AllocCacheReply {
  cache: Address;
  largePages: boolean;
  /** Where the cache's memory is, when it was advised for transparent huge pages; else 0. */
  advised: Address;
}

/** Fill an allocated cache from the key (Argon2d over 256 MiB, one thread). */
export interface InitCacheRequest {
  op: 'initCache';
  cache: Address;
  key: Uint8Array;
}

/** Items per chunk of a dataset fill: ~0.15 s of building, so cancel and progress stay prompt. */
export const DATASET_CHUNK_ITEMS = 1 << 16;

/**
 * Build dataset items: the worker claims chunks of DATASET_CHUNK_ITEMS from the shared counter
 * until none is left, so workers may join a build already under way.
 */
export interface InitDatasetRequest {
  op: 'initDataset';
  dataset: Address;
  cache: Address;
  itemCount: number;
  /** Int32Array[1]: the next chunk to claim. */
  next: SharedArrayBuffer;
  /** Int32Array[1]: Control word. */
  control: SharedArrayBuffer;
  /** Int32Array[1]: items initialised so far, added in chunks by every worker. */
  progress: SharedArrayBuffer;
}
export interface InitDatasetReply {
  /** False when the worker stopped for a pause that became a cancel, or a stop. */
  completed: boolean;
}

/** Fill a dataset from its file: segments claimed from `next`, each checked as it is read. */
export interface LoadDatasetRequest {
  op: 'loadDataset';
  path: string;
  dataset: Address;
  itemBytes: number;
  segmentBytes: number;
  /** The checksum of each segment and their key, from the file's header (dataset-file.ts). */
  digests: Uint8Array[];
  checksumKey: Uint8Array;
  next: SharedArrayBuffer;
  control: SharedArrayBuffer;
  progress: SharedArrayBuffer;
}
export interface LoadDatasetReply {
  completed: boolean;
  /** Why the file cannot be used (a checksum, a short read); the build takes over then. */
  corrupt?: string;
  /** This worker's wall and CPU time in the load. */
  seconds: number;
  cpuSeconds: number;
  /** Read with direct I/O (O_DIRECT), not through the page cache. */
  direct: boolean;
}

/** Recompute single items with randomx_init_dataset and compare them with what is there. */
export interface VerifyItemsRequest {
  op: 'verifyItems';
  dataset: Address;
  cache: Address;
  items: number[];
}
export interface VerifyItemsReply {
  mismatches: number[];
}

/** Write a dataset to `tempPath` with its header, fsync, then rename it to `finalPath`. */
export interface SaveDatasetRequest {
  op: 'saveDataset';
  dataset: Address;
  itemBytes: number;
  keyHash: Uint8Array;
  tempPath: string;
  finalPath: string;
  control: SharedArrayBuffer;
}
export interface SaveDatasetReply {
  saved: boolean;
  /** Written with direct I/O (O_DIRECT), not through the page cache. */
  direct: boolean;
  /** The writing thread's CPU seconds. */
  cpuSeconds: number;
}

export interface HashRequest {
  op: 'hash';
  binding: Binding;
  input: Uint8Array;
}

export interface HashBatchRequest {
  op: 'hashBatch';
  binding: Binding;
  /** All inputs back to back. */
  data: SharedArrayBuffer;
  /** Uint32Array[n + 1]: input i is data[offsets[i], offsets[i + 1]). */
  offsets: SharedArrayBuffer;
  /** n * 32 bytes of hashes, written in place. */
  output: SharedArrayBuffer;
  /** Int32Array[2]: [0] next input index to claim, [1] inputs hashed (flushed in batches). */
  counters: SharedArrayBuffer;
  control: SharedArrayBuffer;
}
export interface HashBatchReply {
  hashed: number;
}

/** Hash consecutive nonces written at nonceOffset; used by Search and Benchmark. */
export interface ScanRequest {
  op: 'scan';
  binding: Binding;
  blob: Uint8Array;
  nonceOffset: number;
  /** Nonces are claimed from the shared counter until it reaches end (exclusive, <= 2^32). */
  end: number;
  /** BigInt64Array[1]: the next nonce to claim, shared by all workers of the job. */
  counter: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** Accept when the hash's last 8 bytes (LE u64) <= hi * 2^32 + lo; null accepts nothing. */
  target: { hi: number; lo: number } | null;
  /** Batched ScanReports go here, the last one marked final. */
  port: MessagePort;
}

/**
 * A worker's batched report. `watermark` is the worker's lowest nonce not yet finished: every
 * nonce it claimed below that is hashed, and its accepted ones are in this or an earlier report.
 */
export interface ScanReport {
  hashes: number;
  watermark: number;
  found: Array<[number, Uint8Array]>;
  /** The worker's last report, posted before its task returns. */
  final: boolean;
}

export type WorkerRequest =
  | AllocCacheRequest
  | InitCacheRequest
  | InitDatasetRequest
  | LoadDatasetRequest
  | VerifyItemsRequest
  | SaveDatasetRequest
  | HashRequest
  | HashBatchRequest
  | ScanRequest;
