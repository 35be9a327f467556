import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ERROR_PREFIX, VigilError, messageOf } from '../core/errors';
import { log } from '../core/log';
import type { TaskHistory, TaskRecord } from './history';
import { Task } from './task';
import type { Json, TaskKind } from './types';

export const DEFAULT_HISTORY_LIMIT = 10000;

export interface TaskManagerOptions {
  /** How many tasks run at once; the rest wait in the queue. */
  maxRunning: number;
  /** How long finished tasks stay on the bus before they leave (history keeps them). */
  retentionMs: number;
  /** Unfinished tasks (queued, running or paused) one UID may have at once. */
  maxQueuedPerUser: number;
  /** Finished tasks the history keeps; older records are pruned. */
  historyLimit?: number;
  history: TaskHistory;
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
}

/** The settings a config reload may change while tasks run. */
export type TaskLimits = Pick<
  TaskManagerOptions,
  'maxRunning' | 'retentionMs' | 'maxQueuedPerUser' | 'historyLimit'
>;

/** The queue: admission (limits), scheduling (MaxRunning), retention and history. */
export class TaskManager extends EventEmitter<TaskManagerEvents> {
  private readonly kinds = new Map<string, TaskKind>();
  private readonly tasks = new Map<string, Task>();
  private readonly queue: Task[] = [];
  private readonly active = new Set<Task>();
  private readonly retentionTimers = new Map<string, NodeJS.Timeout>();
  private readonly now: () => number;
  private stopping = false;

  constructor(private readonly options: TaskManagerOptions) {
    super();
    this.now = options.now ?? Date.now;
  }

  get maxRunning(): number {
    return this.options.maxRunning;
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
  }

  /** Tasks holding a run slot (running, paused or cancelling). */
  get running(): number {
    return this.active.size;
  }

  get queued(): number {
    return this.queue.length;
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

  list(): Task[] {
    return [...this.tasks.values()];
  }

  history(limit: number): TaskRecord[] {
    return this.options.history.recent(limit);
  }

  /** Queue a new task of `kindName` for `ownerUid`; it starts when a slot is free. */
  submit(kindName: string, params: Json, ownerUid: number): Task {
    if (this.stopping) throw new VigilError('Busy', 'vigil is shutting down');
    const kind = this.kinds.get(kindName);
    if (!kind) throw new VigilError('NotSupported', `unknown task kind ${kindName}`);
    kind.validate?.(params);
    const open = this.list().filter((t) => t.ownerUid === ownerUid && !t.isFinal).length;
    if (open >= this.options.maxQueuedPerUser) {
      throw new VigilError(
        'LimitExceeded',
        `uid ${ownerUid} already has ${open} unfinished tasks (limit ${this.options.maxQueuedPerUser})`,
      );
    }
    const task = new Task({ id: this.newId(), kind, ownerUid, params, now: this.now });
    this.adopt(task);
    this.options.history.save(task.toRecord());
    this.queue.push(task);
    this.emit('countsChanged');
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
      if (kind?.resumable && record.checkpoint !== undefined) {
        const task = new Task({
          id: record.id,
          kind,
          ownerUid: record.ownerUid,
          params: record.params,
          now: this.now,
          restoredCheckpoint: record.checkpoint,
          createdTime: record.createdTime,
        });
        this.adopt(task);
        this.queue.push(task);
        log.notice(`resuming ${record.kind} task ${record.id} from its checkpoint`);
        continue;
      }
      const interrupted: TaskRecord = {
        ...record,
        state: 'interrupted',
        finishTime: this.now(),
        errorName: `${ERROR_PREFIX}Failed`,
        errorMessage: 'vigil stopped while the task was running',
      };
      this.options.history.save(interrupted);
      log.notice(`${record.kind} task ${record.id} was interrupted by a daemon stop`);
      if (kind) {
        const task = Task.fromRecord(interrupted, kind, this.now);
        this.tasks.set(task.id, task);
        this.emit('added', task);
        this.retain(task);
      }
    }
    this.emit('countsChanged');
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
    const running = [...this.active];
    for (const task of [...this.queue, ...running]) {
      if (task.kind.resumable && task.checkpointData !== undefined) {
        this.options.history.save(task.toRecord());
        task.removeAllListeners('finished');
        task.stopForShutdown();
      } else {
        task.stopForShutdown();
        task.interrupt('vigil stopped while the task was running');
      }
    }
    const settled = Promise.allSettled(running.map((t) => this.runs.get(t)));
    await Promise.race([settled, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  private readonly runs = new Map<Task, Promise<void>>();

  private adopt(task: Task): void {
    this.tasks.set(task.id, task);
    task.on('stateChanged', () => {
      this.options.history.save(task.toRecord());
    });
    task.on('checkpoint', (data) => {
      this.options.history.saveCheckpoint(task.id, data, task.done, task.progress);
    });
    task.once('finished', () => {
      this.pruneHistoryNowAndThen();
      const queuedIndex = this.queue.indexOf(task);
      if (queuedIndex >= 0) this.queue.splice(queuedIndex, 1);
      this.active.delete(task);
      this.emit('countsChanged');
      this.retain(task);
      this.schedule();
    });
    this.emit('added', task);
  }

  private finishedSincePrune = 0;

  private pruneHistoryNowAndThen(): void {
    const keep = this.options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    // Pruning scans the table, so do it once per hundredth of the limit, not per task.
    if (++this.finishedSincePrune < Math.max(1, Math.floor(keep / 100))) return;
    this.finishedSincePrune = 0;
    this.options.history.prune(keep);
  }

  private retain(task: Task): void {
    if (this.stopping) return;
    const timer = setTimeout(() => {
      this.retentionTimers.delete(task.id);
      this.tasks.delete(task.id);
      this.emit('removed', task);
    }, this.options.retentionMs);
    timer.unref();
    this.retentionTimers.set(task.id, timer);
  }

  private schedule(): void {
    while (!this.stopping && this.active.size < this.options.maxRunning && this.queue.length > 0) {
      const task = this.queue.shift() as Task;
      this.active.add(task);
      const run = task.start().catch((e: unknown) => {
        log.error(`task ${task.id} crashed the task machinery: ${messageOf(e)}`);
      });
      this.runs.set(task, run);
      void run.finally(() => this.runs.delete(task));
    }
    this.emit('countsChanged');
  }

  private newId(): string {
    // 48 random bits: unguessable enough and a valid object-path element.
    let id: string;
    do id = randomBytes(6).toString('hex');
    while (this.tasks.has(id) || this.options.history.get(id));
    return id;
  }
}
