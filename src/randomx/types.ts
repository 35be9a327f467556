/**
 * The vocabulary of RandomX jobs: what a job sees of its task, the typed params it is given
 * (checked once, at the edge, by params.ts) and the results it hands back.
 */
import type { Mode } from './protocol';

/** What a long job sees of its task; a TaskContext satisfies it. */
export interface JobHooks {
  readonly signal: AbortSignal;
  readonly paused: boolean;
  onPauseChange(listener: (paused: boolean) => void): () => void;
  progress(done: number | bigint, total?: number | bigint): void;
  setPhase(phase: string, total?: number | bigint, share?: number): void;
}

export interface SearchHooks extends JobHooks {
  checkpoint(state: SearchState): void;
}

export interface JobOptions {
  mode: Mode;
  threads: number;
}

export type DatasetState = 'none' | 'initializing' | 'ready';

/** How a fast job's dataset came to be: built from the cache, or loaded from its file. */
export type DatasetSource = 'built' | 'cache';

export interface EngineProperties {
  mode: Mode;
  threads: number;
  datasetState: DatasetState;
  datasetKey: Buffer;
  features: string[];
  hashRate: number;
  /** Share of the current dataset backed by huge pages (0 without a dataset). */
  hugePageCoverage: number;
}

export interface BatchParams extends JobOptions {
  key: Buffer;
  inputs: readonly Buffer[];
}

export interface BenchmarkParams extends JobOptions {
  nonces: number;
  /** Absent: a fresh random key, so the measured init is a real build. */
  key?: Buffer;
  /** Measure a key switch: prepare this key's dataset meanwhile, then switch to it. */
  nextKey?: Buffer;
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
  /** The key a coming Input will switch to: its dataset is prepared in the background. */
  nextKey?: Buffer;
}

/** What Task.Input gives a running search: a new job, a new next key, or both. */
export interface SearchInput {
  job?: SearchJob;
  /** null: no next key any more. */
  nextKey?: Buffer | null;
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
  /** The next key as the last Input left it. */
  nextKey?: Buffer;
}

export interface SearchResult extends SearchState {
  /** The search stopped early because it had found maxFound answers. */
  truncated: boolean;
  mode: Mode;
  threads: number;
  hashRate: number;
  /** Fast mode only: the dataset of the job's last key. */
  datasetSource?: DatasetSource;
}

export interface BatchResult {
  hashes: Buffer[];
  mode: Mode;
  threads: number;
  hashRate: number;
  /** Fast mode only. */
  datasetSource?: DatasetSource;
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
  /** Fast mode only. */
  datasetSource?: DatasetSource;
  /** With a next key: the switch to it. */
  next?: {
    /** Hashing under the first key went on until the next dataset was ready, this long. */
    prepareSeconds: number;
    /** From the last hash under the first key to the first under the next. */
    switchSeconds: number;
    hashRate: number;
    datasetSource?: DatasetSource;
  };
}
