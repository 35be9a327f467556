import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ERROR_PREFIX, VigilError, messageOf } from '../core/errors';
import { log } from '../core/log';
import type { StoredTask, TaskHistory, TaskSummary } from './history';
import { FairQueue } from './queue';
import { describeWriteError, HistoryRecorder } from './recorder';
import { resultBytes } from './summary';
import { Task, type SlotGate } from './task';
import type { Json, Submitter, TaskKind } from './types';

export const DEFAULT_HISTORY_LIMIT = 10000;
export const DEFAULT_HISTORY_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_RETAINED_PER_USER = 100;
export const DEFAULT_RETAINED_TOTAL = 1000;
export const DEFAULT_MAX_QUEUED_TOTAL = 4096;

export interface TaskManagerOptions {
  /** How many tasks run at once; the rest wait in the queue. */
  maxRunning: number;
  /** How long finished tasks stay on the bus before they leave (history keeps them). */
  retentionMs: number;
  /** Unfinished tasks (queued, running or paused) one UID may have at once. */
  maxQueuedPerUser: number;
  /** Unfinished tasks of all UIDs together. */
  maxQueuedTotal?: number;
  /** Finished tasks one UID may have on the bus; beyond it the oldest leave early. */
  retainedPerUser?: number;
  /** Finished tasks on the bus in all. */
  retainedTotal?: number;
  /** Finished tasks the history keeps; older records are pruned. */
  historyLimit?: number;
  /** Bytes the history may take (summaries, full results, payloads). */
  historyMaxBytes?: number;
  history: TaskHistory;
  /** How often failed history writes are retried. */
  retryMs?: number;
  now?: () => number;
}

export interface TaskManagerEvents {
  /** A task appeared (submitted, restored) and should be exported. */
  added: [task: Task];
  /** A finished task's retention ended (or the daemon stops) and it should be unexported. */
  removed: [task: Task];
  /** Running or Queued changed. */
  countsChanged: [];
  /** MaxRunning changed (a config reload). */
  maxRunningChanged: [];
  /** `degraded` changed: history writes fail (the reason) or work again (''). */
  degradedChanged: [];
}

/** The settings a config reload may change while tasks run. */
export type TaskLimits = Pick<
  TaskManagerOptions,
  | 'maxRunning'
  | 'retentionMs'
  | 'maxQueuedPerUser'
  | 'maxQueuedTotal'
  | 'retainedPerUser'
  | 'retainedTotal'
  | 'historyLimit'
  | 'historyMaxBytes'
>;

/** A task as GetTask finds it: live (on the bus), or its record in the history. */
export type FoundTask =
  { live: Task; stored?: undefined } | { live?: undefined; stored: StoredTask };

/**
 * The queue: admission (limits), scheduling (run slots), retention and history.
 *
 * Slots: a task holds one while running or cancelling, not while paused (Resume takes one
 * back, or waits `queued` for one). Queued tasks are served round-robin across UIDs, root's
 * and the `vigil` group's ahead of everyone else's, and one unprivileged UID never holds
 * every slot (at most MaxRunning - 1 when MaxRunning > 1), so a privileged job finds a free
 * slot at once or as soon as one frees, whatever an unprivileged user queues.
 */
export class TaskManager extends EventEmitter<TaskManagerEvents> implements SlotGate {
  private readonly kinds = new Map<string, TaskKind>();
  private readonly tasks = new Map<string, Task>();
  private readonly queue = new FairQueue<Task>();
  private readonly active = new Set<Task>();
  private readonly unfinishedByUid = new Map<number, number>();
  private unfinished = 0;
  /** Finished tasks on the bus whose record is on disk, oldest first (they may expire). */
  private readonly retained = new Map<string, Task>();
  private readonly retainedByUid = new Map<number, Set<Task>>();
  private readonly retentionTimers = new Map<string, NodeJS.Timeout>();
  private readonly runs = new Map<Task, Promise<void>>();
  private readonly recorder: HistoryRecorder;
  private readonly now: () => number;
  private stopping = false;
  private scheduling = false;
  private lastCounts = '';
  private finishedSincePrune = 0;
  private bytesSincePrune = 0;

  constructor(private readonly options: TaskManagerOptions) {
    super();
    this.now = options.now ?? Date.now;
    this.recorder = new HistoryRecorder(
      options.history.file,
      () => options.history.probe(),
      options.retryMs,
    );
    this.recorder.on('degradedChanged', () => this.emit('degradedChanged'));
  }

  get maxRunning(): number {
    return this.options.maxRunning;
  }

  /** Tasks holding a run slot (running or cancelling; a paused task holds none). */
  get running(): number {
    return this.active.size;
  }

  /** Tasks waiting for a slot: new ones, and resumed ones waiting to go on. */
  get queued(): number {
    return this.queue.size;
  }

  /** Empty, or why the history cannot be written (the daemon goes on in memory meanwhile). */
  get degraded(): string {
    return this.recorder.degraded;
  }

  /**
   * New limits from now on (a config reload): a higher MaxRunning starts queued tasks at once,
   * a lower one lets running tasks finish; a new retention applies to tasks that finish later.
   */
  configure(limits: TaskLimits): void {
    const before = this.options.maxRunning;
    Object.assign(this.options, limits);
    if (this.options.maxRunning !== before) {
      this.emit('maxRunningChanged');
      this.schedule();
    }
    this.enforceRetentionCaps();
  }

  registerKind(kind: TaskKind): void {
    this.kinds.set(kind.name, kind);
  }

  get(id: string): Task | undefined {
    return this.tasks.get(id);
  }

  /** The task with this id, or NotFound. */
  find(id: string): Task {
    const task = this.tasks.get(id);
    if (!task) throw new VigilError('NotFound', `no task ${id}`);
    return task;
  }

  /** One task, live or from the history, or NotFound. */
  lookup(id: string): FoundTask {
    const live = this.tasks.get(id);
    if (live) return { live };
    const stored = this.options.history.get(id);
    if (!stored) throw new VigilError('NotFound', `no task ${id}`);
    return { stored };
  }

  list(): Task[] {
    return [...this.tasks.values()];
  }

  /** Finished tasks, newest first: at most `limit`, and about `maxBytes` of summaries. */
  history(limit: number, maxBytes?: number): TaskSummary[] {
    return this.options.history.recent(limit, maxBytes);
  }

  /** Queue a new task of `kindName` for `owner`; it starts when a slot is free. */
  submit(kindName: string, params: unknown, owner: Submitter): Task {
    if (this.stopping) throw new VigilError('Busy', 'vigil is shutting down');
    const kind = this.kinds.get(kindName);
    if (!kind) throw new VigilError('NotSupported', `unknown task kind ${kindName}`);
    kind.validate?.(params as never);
    const open = this.unfinishedByUid.get(owner.uid) ?? 0;
    if (open >= this.options.maxQueuedPerUser) {
      throw new VigilError(
        'LimitExceeded',
        `uid ${owner.uid} already has ${open} unfinished tasks (limit ${this.options.maxQueuedPerUser})`,
      );
    }
    const total = this.options.maxQueuedTotal ?? DEFAULT_MAX_QUEUED_TOTAL;
    if (this.unfinished >= total) {
      throw new VigilError(
        'LimitExceeded',
        `vigil already has ${this.unfinished} unfinished tasks (limit ${total})`,
      );
    }
    const task = new Task({
      id: this.newId(),
      kind,
      ownerUid: owner.uid,
      privileged: owner.privileged,
      params,
      now: this.now,
      gate: this,
    });
    // Recorded before it exists anywhere else: a task the history cannot hold is refused.
    try {
      this.recorder.writeOrThrow(() =>
        // A resumable kind's params are JSON (see TaskKind); no other kind's are written.
        this.options.history.insert(
          task.toSummary(),
          kind.resumable ? (params as Json) : undefined,
        ),
      );
    } catch (e) {
      throw new VigilError(
        'Failed',
        `the task was not created: ${describeWriteError(this.options.history.file, e)}`,
      );
    }
    this.adopt(task);
    this.queue.push(task);
    this.schedule();
    return task;
  }

  /**
   * After a restart: tasks the database still has as unfinished were cut off by a crash or a
   * stop. Resumable kinds start again under the same id from their checkpoint; the rest are
   * recorded as interrupted and shown on the bus for the retention time.
   */
  recover(): void {
    for (const record of this.options.history.unfinished()) {
      const kind = this.kinds.get(record.kind);
      if (kind?.resumable && record.checkpoint !== undefined && record.params !== undefined) {
        const task = new Task({
          id: record.id,
          kind,
          ownerUid: record.ownerUid,
          privileged: record.privileged,
          params: record.params,
          now: this.now,
          restoredCheckpoint: record.checkpoint,
          createdTime: record.createdTime,
          gate: this,
        });
        this.adopt(task);
        this.queue.push(task);
        log.notice(`resuming ${record.kind} task ${record.id} from its checkpoint`);
        continue;
      }
      const interrupted: TaskSummary = {
        ...record,
        state: 'interrupted',
        finishTime: this.now(),
        errorName: `${ERROR_PREFIX}Failed`,
        errorMessage: 'vigil stopped while the task was running',
      };
      log.notice(`${record.kind} task ${record.id} was interrupted by a daemon stop`);
      const task = kind ? Task.fromRecord(interrupted, kind, this.now) : undefined;
      if (task) {
        this.tasks.set(task.id, task);
        this.emit('added', task);
      }
      this.recorder.write(
        record.id,
        () => this.options.history.save(interrupted),
        () => task && this.retain(task),
      );
    }
    this.prune();
    this.schedule();
  }

  /**
   * Stop for a daemon shutdown: resumable running tasks keep their unfinished record (and
   * checkpoint) so the next start resumes them; the others are recorded as interrupted.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.stopping = true;
    for (const timer of this.retentionTimers.values()) clearTimeout(timer);
    this.retentionTimers.clear();
    const running = [...this.runs.keys()];
    for (const task of this.list().filter((t) => !t.isFinal)) {
      task.stopForShutdown();
      if (!task.kind.resumable || task.checkpointData === undefined) {
        task.interrupt('vigil stopped while the task was running');
      }
    }
    const settled = Promise.allSettled(running.map((t) => this.runs.get(t)));
    await Promise.race([settled, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    this.recorder.stop();
  }

  // ---- SlotGate: a paused task asks for its slot back on Resume ----

  reclaim(task: Task): boolean {
    if (!this.stopping && this.hasSlotFor(task)) {
      this.active.add(task);
      return true;
    }
    this.queue.push(task);
    return false;
  }

  // ---- internals ----

  private adopt(task: Task): void {
    this.tasks.set(task.id, task);
    this.unfinished++;
    this.unfinishedByUid.set(task.ownerUid, (this.unfinishedByUid.get(task.ownerUid) ?? 0) + 1);
    task.on('stateChanged', () => this.stateChanged(task));
    task.on('checkpoint', (data) =>
      this.recorder.write(`${task.id}/checkpoint`, () =>
        this.options.history.saveCheckpoint(task.id, data, task.done, task.progress),
      ),
    );
    this.emit('added', task);
  }

  /** Keep slots, queue and history in step with a task's state. Never throws. */
  private stateChanged(task: Task): void {
    const history = this.options.history;
    if (task.state !== 'queued') this.queue.remove(task);
    if (task.state === 'paused') this.active.delete(task);
    if (task.isFinal) {
      this.active.delete(task);
      this.unfinished--;
      const left = (this.unfinishedByUid.get(task.ownerUid) ?? 1) - 1;
      if (left > 0) this.unfinishedByUid.set(task.ownerUid, left);
      else this.unfinishedByUid.delete(task.ownerUid);
      // The record must land before the task may expire from the bus: until then its result
      // is only in memory, so it stays (retried until the disk takes it).
      this.recorder.write(
        task.id,
        () => history.save(task.toSummary(), task.result),
        () => this.retain(task),
      );
      this.finishedSincePrune++;
      this.bytesSincePrune += resultBytes(task.result);
      this.pruneNowAndThen();
    } else {
      this.recorder.write(task.id, () => history.save(task.toSummary()));
    }
    this.schedule();
  }

  private hasSlotFor(task: Task): boolean {
    if (this.active.size >= this.options.maxRunning) return false;
    if (task.privileged) return true;
    const share = Math.max(1, this.options.maxRunning - 1);
    let held = 0;
    for (const t of this.active) if (t.ownerUid === task.ownerUid) held++;
    return held < share;
  }

  private schedule(): void {
    // Starting a task changes its state, which schedules again: the outer call does it all.
    if (this.scheduling) return;
    this.scheduling = true;
    try {
      while (!this.stopping && this.active.size < this.options.maxRunning) {
        const task = this.queue.take((t) => this.hasSlotFor(t));
        if (!task) break;
        this.active.add(task);
        if (task.hasStarted) {
          task.proceed();
          continue;
        }
        const run = task.start().catch((e: unknown) => {
          log.error(`task ${task.id} crashed the task machinery: ${messageOf(e)}`);
        });
        this.runs.set(task, run);
        void run.finally(() => this.runs.delete(task));
      }
    } finally {
      this.scheduling = false;
    }
    const counts = `${this.active.size}/${this.queue.size}`;
    if (counts === this.lastCounts) return;
    this.lastCounts = counts;
    this.emit('countsChanged');
  }

  private retain(task: Task): void {
    if (this.stopping || this.tasks.get(task.id) !== task) return;
    this.retained.set(task.id, task);
    let mine = this.retainedByUid.get(task.ownerUid);
    if (!mine) this.retainedByUid.set(task.ownerUid, (mine = new Set()));
    mine.add(task);
    const timer = setTimeout(() => this.expire(task), this.options.retentionMs);
    timer.unref();
    this.retentionTimers.set(task.id, timer);
    this.enforceRetentionCaps(task.ownerUid);
  }

  /** Oldest first, finished tasks leave the bus early when a UID or everyone has too many. */
  private enforceRetentionCaps(uid?: number): void {
    const perUser = this.options.retainedPerUser ?? DEFAULT_RETAINED_PER_USER;
    const total = this.options.retainedTotal ?? DEFAULT_RETAINED_TOTAL;
    const uids = uid === undefined ? [...this.retainedByUid.keys()] : [uid];
    for (const u of uids) {
      const mine = this.retainedByUid.get(u);
      while (mine && mine.size > perUser) this.expire(mine.values().next().value as Task);
    }
    while (this.retained.size > total) this.expire(this.retained.values().next().value as Task);
  }

  private expire(task: Task): void {
    clearTimeout(this.retentionTimers.get(task.id));
    this.retentionTimers.delete(task.id);
    this.retained.delete(task.id);
    const mine = this.retainedByUid.get(task.ownerUid);
    mine?.delete(task);
    if (mine?.size === 0) this.retainedByUid.delete(task.ownerUid);
    if (this.tasks.get(task.id) !== task) return;
    this.tasks.delete(task.id);
    this.emit('removed', task);
  }

  private pruneNowAndThen(): void {
    const rows = this.options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    const bytes = this.options.historyMaxBytes ?? DEFAULT_HISTORY_MAX_BYTES;
    // Pruning scans the table: once per hundredth of either limit, not per task.
    if (
      this.finishedSincePrune < Math.max(1, Math.floor(rows / 100)) &&
      this.bytesSincePrune < bytes / 100
    ) {
      return;
    }
    this.prune();
  }

  private prune(): void {
    this.finishedSincePrune = 0;
    this.bytesSincePrune = 0;
    try {
      this.options.history.prune({
        maxRows: this.options.historyLimit ?? DEFAULT_HISTORY_LIMIT,
        maxBytes: this.options.historyMaxBytes ?? DEFAULT_HISTORY_MAX_BYTES,
      });
    } catch (e) {
      // A full disk can refuse even deletes; the next prune tries again.
      log.debug(`pruning the task history failed: ${messageOf(e)}`);
    }
  }

  private newId(): string {
    // 48 random bits: unguessable enough and a valid object-path element.
    let id: string;
    do id = randomBytes(6).toString('hex');
    while (this.tasks.has(id) || this.options.history.has(id));
    return id;
  }
}
