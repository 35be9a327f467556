import { EventEmitter } from 'node:events';
import { VigilError, ERROR_PREFIX, isVigilError, messageOf } from '../core/errors';
import type { TypedDict } from '../core/typed';
import type { TaskSummary } from './history';
import { RateWindow } from './rate';
import { smallResult } from './summary';
import { FINAL_STATES, type Json, type TaskContext, type TaskKind, type TaskState } from './types';

/** Progress traffic is batched to at most this many updates per second per task. */
export const MAX_UPDATES_PER_SECOND = 10;
const MIN_UPDATE_INTERVAL_MS = 1000 / MAX_UPDATES_PER_SECOND;

export type TaskProperty =
  | 'State'
  | 'Progress'
  | 'ProgressValid'
  | 'Phase'
  | 'Done'
  | 'Total'
  | 'Rate'
  | 'StartTime'
  | 'ExpectedEndTime'
  | 'FinishTime'
  | 'Result'
  | 'ErrorName'
  | 'ErrorMessage';

export interface TaskEvents {
  /** Batched: names of properties whose values changed since the last batch. */
  changed: [names: TaskProperty[]];
  /** Batched with `changed`: at most MAX_UPDATES_PER_SECOND per second, at once on state change. */
  progress: [progress: number, done: number, total: number, rate: number];
  /** Exactly once, when the task reaches a final state. */
  finished: [state: TaskState, result: TypedDict];
  /** Unbatched: for the manager's queue and history. */
  stateChanged: [state: TaskState];
  checkpoint: [data: Json];
}

/**
 * How a paused task gets a run slot back on Resume (a paused task gives its slot up):
 * `reclaim` answers whether it may go on at once; if not, the manager has queued it and
 * calls `proceed()` when a slot is free. Until then the job stays paused.
 */
export interface SlotGate {
  reclaim(task: Task): boolean;
}

const ALWAYS_FREE: SlotGate = { reclaim: () => true };

export interface TaskInit {
  id: string;
  kind: TaskKind;
  ownerUid: number;
  /** The submitter is root or in the `vigil` group: served ahead of unprivileged queues. */
  privileged?: boolean;
  /** What the kind's `run` gets; none for a task rebuilt from its record (it will not run). */
  params?: unknown;
  now: () => number;
  restoredCheckpoint?: Json;
  createdTime?: number;
  gate?: SlotGate;
}

interface Waiter {
  resolve: (r: TypedDict) => void;
  reject: (e: Error) => void;
}

/**
 * One long job: its observable state (the Task D-Bus properties), owner checks and controls.
 * The job itself is the kind's `run`; this object only tracks and steers it (UDisks2 keeps its
 * Job object apart from the operations that use it in the same way).
 */
export class Task extends EventEmitter<TaskEvents> {
  readonly id: string;
  readonly kind: TaskKind;
  readonly ownerUid: number;
  readonly privileged: boolean;
  readonly createdTime: number;

  state: TaskState = 'queued';
  progress = 0;
  progressValid = false;
  phase = '';
  done = 0;
  total = 0;
  rate = 0;
  startTime = 0;
  expectedEndTime = 0;
  finishTime = 0;
  result: TypedDict = {};
  errorName = '';
  errorMessage = '';
  checkpointData: Json | undefined;

  private readonly now: () => number;
  private readonly gate: SlotGate;
  /** The params, kept only until the task finishes (a batch's may be megabytes). */
  private payload: unknown;
  /** The job has begun (so a `queued` task is one resumed and waiting for its slot back). */
  private started = false;
  /** The job must hold still: paused, or resumed and still waiting for a slot. */
  private held = false;
  private small: TypedDict | undefined;
  private readonly abort = new AbortController();
  private readonly rateWindow = new RateWindow();
  private readonly pauseListeners = new Set<(paused: boolean) => void>();
  private resumeWaiters: (() => void)[] = [];
  private readonly waiters = new Set<Waiter>();
  /** Progress when the current phase began, and the part of the whole that it fills. */
  private phaseBase = 0;
  private phaseShare = 1;
  private dirty = new Set<TaskProperty>();
  private progressDirty = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private lastFlush = 0;

  constructor(init: TaskInit) {
    super();
    this.id = init.id;
    this.kind = init.kind;
    this.ownerUid = init.ownerUid;
    this.privileged = init.privileged ?? false;
    this.payload = init.params;
    this.now = init.now;
    this.gate = init.gate ?? ALWAYS_FREE;
    this.createdTime = init.createdTime ?? init.now();
    this.checkpointData = init.restoredCheckpoint;
  }

  get unit(): string {
    return this.kind.unit;
  }

  get cancelable(): boolean {
    return this.kind.cancelable;
  }

  get isFinal(): boolean {
    return FINAL_STATES.has(this.state);
  }

  /** The params it was submitted with; undefined once finished (they are not kept). */
  get params(): unknown {
    return this.payload;
  }

  /** The result as everybody may see it (Task.Result, Finished): capped in size. */
  get smallResult(): TypedDict {
    this.small ??= smallResult(this.result);
    return this.small;
  }

  /** Waiters still waiting (each a pending `Wait` call). */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Rebuild a finished task from its summary (e.g. one interrupted by a daemon crash). */
  static fromRecord(r: TaskSummary, kind: TaskKind, now: () => number): Task {
    const t = new Task({
      id: r.id,
      kind,
      ownerUid: r.ownerUid,
      privileged: r.privileged,
      now,
    });
    Object.assign(t, {
      state: r.state,
      progress: r.progress,
      progressValid: r.total > 0,
      phase: r.phase,
      done: r.done,
      total: r.total,
      startTime: r.startTime,
      finishTime: r.finishTime,
      result: r.result,
      errorName: r.errorName,
      errorMessage: r.errorMessage,
    });
    return t;
  }

  /** What the history keeps of it: no params, a small result. */
  toSummary(): TaskSummary {
    return {
      id: this.id,
      kind: this.kind.name,
      ownerUid: this.ownerUid,
      privileged: this.privileged,
      state: this.state,
      result: this.smallResult,
      errorName: this.errorName,
      errorMessage: this.errorMessage,
      phase: this.phase,
      done: this.done,
      total: this.total,
      progress: this.progress,
      createdTime: this.createdTime,
      startTime: this.startTime,
      finishTime: this.finishTime,
    };
  }

  // ---- controls, called on behalf of a bus caller ----

  // Only the owner or root may steer a task: the Task interface's table says so (access
  // `owner`) and the object server enforces it before these run.

  cancel(): void {
    if (!this.kind.cancelable) {
      throw new VigilError('NotSupported', `${this.kind.name} tasks cannot be cancelled`);
    }
    if (this.isFinal) throw this.wrongState('cancel');
    if (this.state === 'cancelling') return;
    if (this.state === 'queued' && !this.started) {
      // Abort too, so whatever the kind set up for the task (e.g. early input) is released.
      const reason = new VigilError('Cancelled', 'cancelled before it started');
      this.abort.abort(reason);
      this.finish('cancelled', {}, reason);
      return;
    }
    this.setState('cancelling');
    this.abort.abort(new VigilError('Cancelled', `task ${this.id} was cancelled`));
    this.wakePaused();
  }

  /** Hold the job still and give the run slot up (the manager hands it to the next task). */
  pause(): void {
    const waitingForSlot = this.state === 'queued' && this.started;
    if (this.state !== 'running' && !waitingForSlot) throw this.wrongState('pause');
    this.rateWindow.reset();
    this.hold();
    this.setState('paused');
  }

  /** Go on at once if a slot is free; otherwise wait `queued` (still held) for one. */
  resume(): void {
    if (this.state !== 'paused') throw this.wrongState('resume');
    if (this.gate.reclaim(this)) this.proceed();
    else this.setState('queued');
  }

  /** The manager granted a resumed task its slot: the job goes on. */
  proceed(): void {
    if (this.state !== 'queued' && this.state !== 'paused') return;
    this.held = false;
    this.setState('running');
    this.wakePaused();
    for (const l of this.pauseListeners) l(false);
  }

  /** Whether the job has begun (a `queued` task that has is waiting for its slot back). */
  get hasStarted(): boolean {
    return this.started;
  }

  input(data: Record<string, unknown>): void {
    if (!this.kind.input) {
      throw new VigilError('NotSupported', `${this.kind.name} tasks take no input`);
    }
    if (this.isFinal || this.state === 'cancelling') throw this.wrongState('feed');
    this.kind.input(this.context, data);
  }

  /**
   * Resolves with the result once the task completes; rejects with the task's error otherwise.
   * An aborted `signal` (the waiting caller left the bus) drops the waiter, rejecting with
   * the signal's reason.
   */
  wait(signal?: AbortSignal): Promise<TypedDict> {
    if (this.isFinal)
      return this.state === 'completed'
        ? Promise.resolve(this.result)
        : Promise.reject(this.error());
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      const drop = (): void => {
        this.waiters.delete(waiter);
        reject(signal?.reason as Error);
      };
      const waiter: Waiter = {
        resolve: (r) => {
          signal?.removeEventListener('abort', drop);
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', drop);
          reject(e);
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', drop, { once: true });
    });
  }

  // ---- lifecycle, driven by the manager ----

  /** Run the job; settles when the task has reached a final state. */
  async start(): Promise<void> {
    if (this.state !== 'queued' || this.started) return;
    this.started = true;
    this.startTime = this.now();
    this.setState('running', ['StartTime']);
    try {
      const result = await this.kind.run(this.context, this.payload as never);
      if (this.cancelRequested() && !this.completedAnyway(result)) {
        this.finish('cancelled', {}, new VigilError('Cancelled', `task ${this.id} was cancelled`));
      } else {
        this.finish('completed', result);
      }
    } catch (e) {
      if (this.cancelRequested()) {
        this.finish('cancelled', {}, new VigilError('Cancelled', `task ${this.id} was cancelled`));
      } else if (this.abort.signal.aborted) {
        // Aborted by a daemon shutdown: the manager records it; nothing is announced here.
        return;
      } else {
        this.finish('failed', {}, isVigilError(e) ? e : new VigilError('Failed', messageOf(e)));
      }
    }
  }

  /** Stop the job because the daemon is going away; it is recorded, not cancelled. */
  stopForShutdown(): void {
    this.abort.abort(new VigilError('Cancelled', 'vigil is shutting down'));
    this.wakePaused();
  }

  /** Mark interrupted (daemon stopped under it). */
  interrupt(message: string): void {
    if (this.isFinal) return;
    this.finish('interrupted', {}, new VigilError('Failed', message));
  }

  // ---- what the job sees ----

  readonly context: TaskContext = ((task: Task): TaskContext => ({
    get id() {
      return task.id;
    },
    signal: task.abort.signal,
    get paused() {
      return task.held;
    },
    pausePoint: () => task.pausePoint(),
    onPauseChange: (listener) => {
      task.pauseListeners.add(listener);
      return () => task.pauseListeners.delete(listener);
    },
    progress: (done, total) =>
      task.reportProgress(Number(done), total === undefined ? undefined : Number(total)),
    setPhase: (phase, total, share) =>
      task.setPhase(phase, total === undefined ? undefined : Number(total), share),

    checkpoint: (data) => {
      task.checkpointData = data;
      task.emit('checkpoint', data);
    },
    get restoredCheckpoint() {
      return task.checkpointData;
    },
  }))(this);

  private async pausePoint(): Promise<void> {
    while (this.held && !this.abort.signal.aborted) {
      await new Promise<void>((resolve) => this.resumeWaiters.push(resolve));
    }
    if (this.abort.signal.aborted) throw this.abort.signal.reason;
  }

  private hold(): void {
    if (this.held) return;
    this.held = true;
    for (const l of this.pauseListeners) l(true);
  }

  private wakePaused(): void {
    const waiters = this.resumeWaiters;
    this.resumeWaiters = [];
    for (const w of waiters) w();
  }

  private reportProgress(done: number, total?: number): void {
    if (this.isFinal) return;
    if (total !== undefined && total !== this.total) {
      this.total = total;
      this.mark('Total');
    }
    if (done > this.done) {
      this.done = done;
      this.mark('Done');
      this.rateWindow.add(this.now(), done);
    }
    this.updateDerived();
  }

  private setPhase(phase: string, total?: number, share?: number): void {
    if (this.isFinal) return;
    this.phase = phase;
    this.mark('Phase');
    if (total !== undefined) {
      const left = 1 - this.progress;
      this.phaseBase = this.progress;
      this.phaseShare = share === undefined ? left : Math.min(left, Math.max(0, share));
      this.total = total;
      this.done = 0;
      this.rateWindow.reset();
      this.mark('Total', 'Done');
      this.updateDerived();
    }
    this.flush();
  }

  private updateDerived(): void {
    const valid = this.total > 0;
    if (valid !== this.progressValid) {
      this.progressValid = valid;
      this.mark('ProgressValid');
    }
    if (valid) {
      // Progress never goes back, even when a new phase restarts Done.
      const fraction = Math.min(1, this.done / this.total);
      const p = Math.min(1, Math.max(this.progress, this.phaseBase + this.phaseShare * fraction));
      if (p !== this.progress) {
        this.progress = p;
        this.mark('Progress');
      }
    }
    const rate = this.rateWindow.rate();
    if (rate !== this.rate) {
      this.rate = rate;
      this.mark('Rate');
    }
    const eta =
      rate > 0 && this.total > 0
        ? Math.round(this.now() + ((this.total - this.done) / rate) * 1000)
        : 0;
    if (eta !== this.expectedEndTime) {
      this.expectedEndTime = eta;
      this.mark('ExpectedEndTime');
    }
    this.progressDirty = true;
    this.scheduleFlush();
  }

  private mark(...names: TaskProperty[]): void {
    for (const n of names) this.dirty.add(n);
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    const wait = Math.max(0, this.lastFlush + MIN_UPDATE_INTERVAL_MS - this.now());
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, wait);
  }

  /** Emit everything pending now (state changes do not wait for the batch interval). */
  private flush(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    this.lastFlush = this.now();
    // Progress first, so a client never sees a Progress signal after State=completed.
    if (this.progressDirty) {
      this.progressDirty = false;
      this.emit('progress', this.progress, this.done, this.total, this.rate);
    }
    if (this.dirty.size > 0) {
      const names = [...this.dirty];
      this.dirty.clear();
      this.emit('changed', names);
    }
  }

  private setState(state: TaskState, also: TaskProperty[] = []): void {
    this.state = state;
    this.mark('State', ...also);
    this.emit('stateChanged', state);
    this.flush();
  }

  private finish(state: TaskState, result: TypedDict, error?: VigilError): void {
    if (this.isFinal) return;
    this.result = result;
    this.small = undefined;
    this.payload = undefined;
    this.finishTime = this.now();
    if (state === 'completed' && this.total > 0) {
      this.done = Math.max(this.done, this.total);
      this.progress = 1;
      this.mark('Done', 'Progress');
      this.progressDirty = true;
    }
    if (error) {
      this.errorName = error.dbusName;
      this.errorMessage = error.message;
    }
    this.rate = 0;
    this.expectedEndTime = 0;
    this.setState(state, [
      'Result',
      'FinishTime',
      'ErrorName',
      'ErrorMessage',
      'Rate',
      'ExpectedEndTime',
    ]);
    // Waiters first: their replies go out after this turn anyway, and nothing a listener
    // of `finished` does can leave them hanging.
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) {
      if (state === 'completed') w.resolve(result);
      else w.reject(this.error());
    }
    this.pauseListeners.clear();
    this.emit('finished', state, result);
  }

  /** A method, not a field read, so TypeScript does not narrow `state` across awaits. */
  private cancelRequested(): boolean {
    return this.state === 'cancelling' && this.abort.signal.aborted;
  }

  private completedAnyway(_result: TypedDict): boolean {
    // A job that ignored the abort and returned has done its work; report it as completed only
    // if it reached its total, otherwise the cancel wins.
    return this.total > 0 && this.done >= this.total;
  }

  private error(): VigilError {
    const code = this.errorName.startsWith(ERROR_PREFIX)
      ? this.errorName.slice(ERROR_PREFIX.length)
      : 'Failed';
    return new VigilError(code as VigilError['code'], this.errorMessage || `task ${this.state}`);
  }

  private wrongState(action: string): VigilError {
    return new VigilError('Failed', `cannot ${action} task ${this.id}: it is ${this.state}`);
  }
}
