import type { TypedDict } from '../core/typed';

export type TaskState =
  | 'queued'
  | 'running'
  | 'paused'
  | 'cancelling'
  | 'completed'
  | 'failed'
  | 'cancelled'
  | 'interrupted';

export const FINAL_STATES: ReadonlySet<TaskState> = new Set([
  'completed',
  'failed',
  'cancelled',
  'interrupted',
]);

/**
 * Who submits a task. Privileged owners (root, the daemon's own user, the `vigil` group: what
 * the object server's `caller.privileged()` says) are served before unprivileged queues.
 */
export interface Submitter {
  readonly uid: number;
  readonly privileged: boolean;
}

/** Plain JSON data: task parameters, live input and checkpoints are stored as JSON. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * What a running job sees of its Task. The job never touches the bus: it reports through
 * this object and the task machinery turns that into properties and (batched) signals.
 */
export interface TaskContext {
  readonly id: string;
  /** Aborted when the task is cancelled (or the daemon shuts down); stop work promptly. */
  readonly signal: AbortSignal;
  /**
   * True while the job must hold still: paused, or resumed but still waiting for a run slot.
   * Long loops call `pausePoint()`; pool-based jobs listen to `onPauseChange`.
   */
  readonly paused: boolean;
  /** Resolves at once unless paused (then when resumed); rejects with Cancelled once cancelled. */
  pausePoint(): Promise<void>;
  /**
   * Called with true on Pause and false once the job may go on (Resume, and a run slot is
   * free: a paused task gives its slot up). Returns an unsubscribe function.
   */
  onPauseChange(listener: (paused: boolean) => void): () => void;
  /** Work done so far (monotonic; smaller values are ignored) and, optionally, a new total. */
  progress(done: number | bigint, total?: number | bigint): void;
  /**
   * A named phase such as `dataset` or `hashing`. With `total`, Done/Total restart for the
   * phase, which then fills `share` of the task's Progress (default: all that is left), so
   * Progress keeps rising across phases instead of sticking at 1 after the first.
   */
  setPhase(phase: string, total?: number | bigint, share?: number): void;
  /** Persist resumable state (e.g. next nonce); kinds with `resume` are restarted from it. */
  checkpoint(data: Json): void;
  /** The last checkpoint of a previous run of this same task, after a daemon restart. */
  readonly restoredCheckpoint: Json | undefined;
}

/** One kind of long job (slow-random, randomx-search, ...). */
/**
 * P is what `run` gets. A resumable kind's params are written to the history, so they must be
 * JSON; the others may keep anything (a 4 MiB batch keeps its Buffers: turning 65,536 inputs
 * into hex and back held the main loop for about 80 ms).
 */
export interface TaskKind<P = Json> {
  readonly name: string;
  /** Unit of Done/Total, e.g. `bits`, `hashes`. */
  readonly unit: string;
  readonly cancelable: boolean;
  /** Run the job to completion and return its result; throw VigilError to fail it. */
  run(ctx: TaskContext, params: P): Promise<TypedDict>;
  /**
   * Live input (`Task.Input`). Absent means the kind refuses input with NotSupported.
   * Throw VigilError('InvalidArgument') for input the kind does not accept.
   */
  input?(ctx: TaskContext, data: Record<string, unknown>): void;
  /**
   * When true, a task of this kind that was running when the daemon died is started again
   * under the same id from its last checkpoint, instead of being marked interrupted. Only
   * these kinds have their params written to the history (until they finish).
   */
  readonly resumable?: boolean;
  /** Validate params before the task is queued; throw VigilError('InvalidArgument'). */
  validate?(params: P): void;
}
