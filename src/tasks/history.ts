import type { StateDatabase } from '../core/database';
import { decodeDict, encodeDict, type TypedDict } from '../core/typed';
import type { Json, TaskState } from './types';

/** The durable record of one task: what GetHistory returns and what a restart recovers. */
export interface TaskRecord {
  id: string;
  kind: string;
  ownerUid: number;
  state: TaskState;
  params: Json;
  result: TypedDict;
  errorName: string;
  errorMessage: string;
  phase: string;
  done: number;
  total: number;
  progress: number;
  createdTime: number;
  startTime: number;
  finishTime: number;
  checkpoint: Json | undefined;
}

interface Row {
  id: string;
  kind: string;
  owner_uid: number;
  state: string;
  params: string;
  result: string | null;
  error_name: string;
  error_message: string;
  phase: string;
  done: number;
  total: number;
  progress: number;
  created_time: number;
  start_time: number;
  finish_time: number;
  checkpoint: string | null;
}

/** Task history in SQLite. Times are milliseconds since the epoch, 0 meaning never. */
export class TaskHistory {
  private readonly upsertStmt;
  private readonly checkpointStmt;
  private readonly recentStmt;
  private readonly unfinishedStmt;
  private readonly getStmt;
  private readonly pruneStmt;

  constructor(db: StateDatabase) {
    db.exec(`CREATE TABLE IF NOT EXISTS tasks (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      owner_uid INTEGER NOT NULL,
      state TEXT NOT NULL,
      params TEXT NOT NULL,
      result TEXT,
      error_name TEXT NOT NULL DEFAULT '',
      error_message TEXT NOT NULL DEFAULT '',
      phase TEXT NOT NULL DEFAULT '',
      done REAL NOT NULL DEFAULT 0,
      total REAL NOT NULL DEFAULT 0,
      progress REAL NOT NULL DEFAULT 0,
      created_time INTEGER NOT NULL,
      start_time INTEGER NOT NULL DEFAULT 0,
      finish_time INTEGER NOT NULL DEFAULT 0,
      checkpoint TEXT
    )`);
    db.exec('CREATE INDEX IF NOT EXISTS tasks_finish ON tasks (finish_time)');
    this.upsertStmt = db.prepare(`INSERT INTO tasks (id, kind, owner_uid, state, params, result,
        error_name, error_message, phase, done, total, progress, created_time, start_time,
        finish_time, checkpoint)
      VALUES (@id, @kind, @owner_uid, @state, @params, @result, @error_name, @error_message,
        @phase, @done, @total, @progress, @created_time, @start_time, @finish_time, @checkpoint)
      ON CONFLICT(id) DO UPDATE SET state = excluded.state, result = excluded.result,
        error_name = excluded.error_name, error_message = excluded.error_message,
        phase = excluded.phase, done = excluded.done, total = excluded.total,
        progress = excluded.progress, start_time = excluded.start_time,
        finish_time = excluded.finish_time,
        checkpoint = COALESCE(excluded.checkpoint, tasks.checkpoint)`);
    this.checkpointStmt = db.prepare(
      'UPDATE tasks SET checkpoint = ?, done = ?, progress = ? WHERE id = ?',
    );
    this.recentStmt = db.prepare(
      `SELECT * FROM tasks WHERE state IN ('completed', 'failed', 'cancelled', 'interrupted')
       ORDER BY finish_time DESC, created_time DESC LIMIT ?`,
    );
    this.unfinishedStmt = db.prepare(
      `SELECT * FROM tasks WHERE state NOT IN ('completed', 'failed', 'cancelled', 'interrupted')
       ORDER BY created_time`,
    );
    this.getStmt = db.prepare('SELECT * FROM tasks WHERE id = ?');
    this.pruneStmt = db.prepare(
      `DELETE FROM tasks WHERE state IN ('completed', 'failed', 'cancelled', 'interrupted')
       AND id NOT IN (SELECT id FROM tasks
         WHERE state IN ('completed', 'failed', 'cancelled', 'interrupted')
         ORDER BY finish_time DESC, created_time DESC LIMIT ?)`,
    );
  }

  /**
   * Keep the newest `keep` finished tasks; older ones are deleted so the database cannot grow
   * without bound (anyone may start `slow` tasks). Run now and then, not on every save.
   */
  prune(keep: number): number {
    return this.pruneStmt.run(keep).changes;
  }

  save(r: TaskRecord): void {
    this.upsertStmt.run({
      id: r.id,
      kind: r.kind,
      owner_uid: r.ownerUid,
      state: r.state,
      params: JSON.stringify(r.params),
      result: encodeDict(r.result),
      error_name: r.errorName,
      error_message: r.errorMessage,
      phase: r.phase,
      done: r.done,
      total: r.total,
      progress: r.progress,
      created_time: r.createdTime,
      start_time: r.startTime,
      finish_time: r.finishTime,
      checkpoint: r.checkpoint === undefined ? null : JSON.stringify(r.checkpoint),
    });
  }

  saveCheckpoint(id: string, checkpoint: Json, done: number, progress: number): void {
    this.checkpointStmt.run(JSON.stringify(checkpoint), done, progress, id);
  }

  /** Finished tasks, newest first. */
  recent(limit: number): TaskRecord[] {
    return (this.recentStmt.all(limit) as Row[]).map(fromRow);
  }

  /** Tasks whose last recorded state was not final: the daemon stopped while they ran. */
  unfinished(): TaskRecord[] {
    return (this.unfinishedStmt.all() as Row[]).map(fromRow);
  }

  get(id: string): TaskRecord | undefined {
    const row = this.getStmt.get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }
}

function fromRow(row: Row): TaskRecord {
  return {
    id: row.id,
    kind: row.kind,
    ownerUid: row.owner_uid,
    state: row.state as TaskState,
    params: JSON.parse(row.params) as Json,
    result: decodeDict(row.result),
    errorName: row.error_name,
    errorMessage: row.error_message,
    phase: row.phase,
    done: row.done,
    total: row.total,
    progress: row.progress,
    createdTime: row.created_time,
    startTime: row.start_time,
    finishTime: row.finish_time,
    checkpoint: row.checkpoint === null ? undefined : (JSON.parse(row.checkpoint) as Json),
  };
}
