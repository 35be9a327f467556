/** What the job algorithms (batch, search, benchmark) use of the engine. */
import type { WorkerPool } from './dispatch';
import type { Mode } from './protocol';
import type { RateMeter } from './rate-meter';
import type { KeyResource, KeyResources } from './resources';
import type { DatasetSource } from './types';

/** A job holding its hashing slots; `end` gives them back. */
export interface RunningJob {
  /** The workers it may use: what it asked for, capped at the engine's threads. */
  readonly threads: number;
  end(): void;
}

export interface JobRuntime {
  readonly pool: WorkerPool;
  readonly resources: KeyResources;
  readonly meter: RateMeter;
  /** How often a running search checkpoints. */
  readonly checkpointIntervalMs: number;
  /** Answers a search keeps before it ends early with `truncated`. */
  readonly maxFound: number;
  /** Wait for hashing slots (FIFO, so quick Hash is never starved) and count the job as running. */
  start(threads: number, signal: AbortSignal): Promise<RunningJob>;
  /** Emit `changed` for the engine properties that differ from last time. */
  announce(): void;
}

/** A fast job's `datasetSource` (how its dataset came to be); nothing in light mode. */
export function datasetSource(
  resource: KeyResource,
  mode: Mode,
): { datasetSource?: DatasetSource } {
  return mode === 'fast' && resource.datasetSource ? { datasetSource: resource.datasetSource } : {};
}
