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

export interface EngineProperties {
  mode: Mode;
  threads: number;
  datasetState: DatasetState;
  datasetKey: Buffer;
  features: string[];
  hashRate: number;
}

export interface BatchParams extends JobOptions {
  key: Buffer;
  inputs: readonly Buffer[];
}

export interface BenchmarkParams extends JobOptions {
  nonces: number;
  /** Absent: a fresh random key, so the measured init is a real build. */
  key?: Buffer;
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
