import { getMeta, setMeta, StateDatabaseError, type StateDatabase } from '../core/database';
import { messageOf } from '../core/errors';
import { log } from '../core/log';
import { decodeDict, encodeDict, type TypedDict } from '../core/typed';
import { smallResult } from './summary';
import { FINAL_STATES, type Json, type TaskState } from './types';

/**
 * What the history keeps of every task, the way PackageKit keeps a transaction summary: who,
 * what, when, how it ended and a small result. Params are not part of it.
 */
export interface TaskSummary {
  id: string;
  kind: string;
  ownerUid: number;
  /** Submitted by root or the `vigil` group (its queue tier after a restart). */
  privileged: boolean;
  state: TaskState;
  /** At most SMALL_RESULT_BYTES; the full result, when bigger, is kept apart. */
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
}

/** A task the daemon stopped under, with what a resumable kind needs to start it again. */
export interface UnfinishedTask extends TaskSummary {
  params: Json | undefined;
  checkpoint: Json | undefined;
}

/** One task as GetTask shows it to its owner: the summary and, if kept, the full result. */
export interface StoredTask extends TaskSummary {
  fullResult: TypedDict | undefined;
}

export interface HistoryLimits {
  /** Finished tasks kept (their summaries). */
  maxRows: number;
  /** Bytes of summaries, full results and payloads together; full results go first. */
  maxBytes: number;
}

/** The version of the tables below, in `vigil_meta`; a newer one is refused, an older migrated. */
export const HISTORY_SCHEMA = 1;
const SCHEMA_KEY = 'tasks_schema_version';

/** Bytes a summary row costs beyond its variable parts (columns, index entries). */
const ROW_OVERHEAD = 200;
const MAX_ERROR_MESSAGE = 1024;
/** Pruning frees down to this share of the budget, so it does not run again at once. */
const PRUNE_TO = 0.9;

const FINAL_LIST = [...FINAL_STATES].map((s) => `'${s}'`).join(', ');

interface SummaryRow {
  id: string;
  kind: string;
  owner_uid: number;
  privileged: number;
  state: string;
  result: string;
  error_name: string;
  error_message: string;
  phase: string;
  done: number;
  total: number;
  progress: number;
  created_time: number;
  start_time: number;
  finish_time: number;
  size: number;
}

const SUMMARY_COLUMNS = `id, kind, owner_uid, privileged, state, result, error_name, error_message,
  phase, done, total, progress, created_time, start_time, finish_time, size`;

function createTables(db: StateDatabase): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS tasks (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      owner_uid INTEGER NOT NULL,
      privileged INTEGER NOT NULL DEFAULT 0,
      state TEXT NOT NULL,
      result TEXT NOT NULL DEFAULT '{}',
      error_name TEXT NOT NULL DEFAULT '',
      error_message TEXT NOT NULL DEFAULT '',
      phase TEXT NOT NULL DEFAULT '',
      done REAL NOT NULL DEFAULT 0,
      total REAL NOT NULL DEFAULT 0,
      progress REAL NOT NULL DEFAULT 0,
      created_time INTEGER NOT NULL,
      start_time INTEGER NOT NULL DEFAULT 0,
      finish_time INTEGER NOT NULL DEFAULT 0,
      size INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS tasks_finish ON tasks (finish_time);
    -- Results bigger than a summary's, for their owner (GetTask); pruned first.
    CREATE TABLE IF NOT EXISTS task_results (
      id TEXT PRIMARY KEY,
      result TEXT NOT NULL,
      size INTEGER NOT NULL
    );
    -- Params and checkpoint of unfinished tasks of resumable kinds; deleted when they finish.
    CREATE TABLE IF NOT EXISTS task_payloads (
      id TEXT PRIMARY KEY,
      params TEXT NOT NULL,
      checkpoint TEXT,
      size INTEGER NOT NULL
    );
  `);
}

function summaryRow(s: TaskSummary): SummaryRow {
  const result = encodeDict(s.result);
  const errorMessage = s.errorMessage.slice(0, MAX_ERROR_MESSAGE);
  return {
    id: s.id,
    kind: s.kind,
    owner_uid: s.ownerUid,
    privileged: s.privileged ? 1 : 0,
    state: s.state,
    result,
    error_name: s.errorName,
    error_message: errorMessage,
    phase: s.phase,
    done: s.done,
    total: s.total,
    progress: s.progress,
    created_time: s.createdTime,
    start_time: s.startTime,
    finish_time: s.finishTime,
    size:
      ROW_OVERHEAD +
      result.length +
      errorMessage.length +
      s.errorName.length +
      s.kind.length +
      s.phase.length,
  };
}

function fromRow(row: SummaryRow): TaskSummary {
  return {
    id: row.id,
    kind: row.kind,
    ownerUid: row.owner_uid,
    privileged: row.privileged !== 0,
    state: row.state as TaskState,
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
  };
}

/**
 * Task history in SQLite, in bounded rows: a summary per task, a task's params only while a
 * resumable kind may need them for a restart, and full results apart (for their owner, pruned
 * first when the byte budget is reached). Times are milliseconds since the epoch, 0 = never.
 */
export class TaskHistory {
  private readonly stmt;

  constructor(private readonly db: StateDatabase) {
    migrate(db);
    const prepare = (sql: string) => db.prepare(sql);
    this.stmt = {
      upsert: prepare(`INSERT INTO tasks (${SUMMARY_COLUMNS})
        VALUES (@id, @kind, @owner_uid, @privileged, @state, @result, @error_name,
          @error_message, @phase, @done, @total, @progress, @created_time, @start_time,
          @finish_time, @size)
        ON CONFLICT(id) DO UPDATE SET state = excluded.state, result = excluded.result,
          error_name = excluded.error_name, error_message = excluded.error_message,
          phase = excluded.phase, done = excluded.done, total = excluded.total,
          progress = excluded.progress, start_time = excluded.start_time,
          finish_time = excluded.finish_time, size = excluded.size`),
      insertPayload: prepare(
        'INSERT OR REPLACE INTO task_payloads (id, params, checkpoint, size) VALUES (?, ?, NULL, ?)',
      ),
      checkpoint: prepare(
        `UPDATE task_payloads SET checkpoint = @checkpoint,
           size = length(params) + length(@checkpoint) WHERE id = @id`,
      ),
      progress: prepare('UPDATE tasks SET done = ?, progress = ? WHERE id = ?'),
      deletePayload: prepare('DELETE FROM task_payloads WHERE id = ?'),
      insertResult: prepare(
        'INSERT OR REPLACE INTO task_results (id, result, size) VALUES (?, ?, ?)',
      ),
      recent: prepare(`SELECT ${SUMMARY_COLUMNS} FROM tasks WHERE state IN (${FINAL_LIST})
        ORDER BY finish_time DESC, created_time DESC LIMIT ?`),
      unfinished: prepare(`SELECT t.*, p.params AS params, p.checkpoint AS checkpoint
        FROM tasks t LEFT JOIN task_payloads p ON p.id = t.id
        WHERE t.state NOT IN (${FINAL_LIST}) ORDER BY t.created_time`),
      get: prepare(`SELECT ${SUMMARY_COLUMNS} FROM tasks WHERE id = ?`),
      getResult: prepare('SELECT result FROM task_results WHERE id = ?'),
      has: prepare('SELECT 1 FROM tasks WHERE id = ?'),
      bytes: prepare(`SELECT (SELECT COALESCE(SUM(size), 0) FROM tasks)
        + (SELECT COALESCE(SUM(size), 0) FROM task_results)
        + (SELECT COALESCE(SUM(size), 0) FROM task_payloads) AS n`),
      pruneRows: prepare(`DELETE FROM tasks WHERE state IN (${FINAL_LIST})
        AND id NOT IN (SELECT id FROM tasks WHERE state IN (${FINAL_LIST})
          ORDER BY finish_time DESC, created_time DESC LIMIT ?)`),
      orphanResults: prepare('DELETE FROM task_results WHERE id NOT IN (SELECT id FROM tasks)'),
      oldestResults: prepare(`SELECT r.id AS id, r.size AS size FROM task_results r
        JOIN tasks t ON t.id = r.id ORDER BY t.finish_time, t.created_time LIMIT 256`),
      deleteResult: prepare('DELETE FROM task_results WHERE id = ?'),
      oldestSummaries: prepare(`SELECT id, size FROM tasks WHERE state IN (${FINAL_LIST})
        ORDER BY finish_time, created_time LIMIT 256`),
      deleteSummary: prepare('DELETE FROM tasks WHERE id = ?'),
    };
  }

  /** The database file, for messages. */
  get file(): string {
    return this.db.name;
  }

  /** A small write that fails as history writes would (a full disk, a read-only file). */
  probe(): void {
    setMeta(this.db, 'write_check', String(Date.now()));
  }

  /**
   * Record a new task; `params` only for a resumable kind (what a restart needs). Written
   * once: later saves never touch them again.
   */
  insert(summary: TaskSummary, params?: Json): void {
    this.db.transaction(() => {
      this.stmt.upsert.run(summaryRow(summary));
      if (params !== undefined) {
        const text = JSON.stringify(params);
        this.stmt.insertPayload.run(summary.id, text, text.length);
      }
    })();
  }

  /**
   * Record a state change. A final state drops the payload and keeps `fullResult` apart when
   * the summary's result had to leave entries out.
   */
  save(summary: TaskSummary, fullResult?: TypedDict): void {
    if (!FINAL_STATES.has(summary.state)) {
      this.stmt.upsert.run(summaryRow(summary));
      return;
    }
    this.db.transaction(() => {
      this.stmt.upsert.run(summaryRow(summary));
      this.stmt.deletePayload.run(summary.id);
      if (fullResult && fullResult !== summary.result) {
        const text = encodeDict(fullResult);
        this.stmt.insertResult.run(summary.id, text, text.length);
      }
    })();
  }

  saveCheckpoint(id: string, checkpoint: Json, done: number, progress: number): void {
    this.db.transaction(() => {
      this.stmt.checkpoint.run({ id, checkpoint: JSON.stringify(checkpoint) });
      this.stmt.progress.run(done, progress, id);
    })();
  }

  /** Finished tasks, newest first: at most `limit`, and no more than `maxBytes` of them. */
  recent(limit: number, maxBytes = Infinity): TaskSummary[] {
    const out: TaskSummary[] = [];
    let bytes = 0;
    for (const row of this.stmt.recent.iterate(limit) as IterableIterator<SummaryRow>) {
      bytes += row.size;
      if (bytes > maxBytes && out.length > 0) break;
      out.push(fromRow(row));
    }
    return out;
  }

  /** Tasks whose last recorded state was not final: the daemon stopped while they ran. */
  unfinished(): UnfinishedTask[] {
    const rows = this.stmt.unfinished.all() as (SummaryRow & {
      params: string | null;
      checkpoint: string | null;
    })[];
    return rows.map((row) => ({
      ...fromRow(row),
      params: row.params === null ? undefined : (JSON.parse(row.params) as Json),
      checkpoint: row.checkpoint === null ? undefined : (JSON.parse(row.checkpoint) as Json),
    }));
  }

  get(id: string): StoredTask | undefined {
    const row = this.stmt.get.get(id) as SummaryRow | undefined;
    if (!row) return undefined;
    const full = this.stmt.getResult.get(id) as { result: string } | undefined;
    return { ...fromRow(row), fullResult: full ? decodeDict(full.result) : undefined };
  }

  has(id: string): boolean {
    return this.stmt.has.get(id) !== undefined;
  }

  /** What the history takes, by the measure of `maxBytes` (stored text plus row overhead). */
  bytes(): number {
    return (this.stmt.bytes.get() as { n: number }).n;
  }

  /**
   * Keep at most `maxRows` finished tasks and `maxBytes` in all: the oldest full results go
   * first (their summaries stay), then the oldest summaries. Unfinished tasks are never
   * pruned. Returns the number of summaries deleted.
   */
  prune(limits: HistoryLimits): number {
    let deleted = 0;
    this.db.transaction(() => {
      deleted = this.stmt.pruneRows.run(limits.maxRows).changes;
      this.stmt.orphanResults.run();
      let total = this.bytes();
      const target = limits.maxBytes * PRUNE_TO;
      const shed = (select: { all(): unknown[] }, remove: { run(id: string): unknown }): number => {
        let n = 0;
        while (total > target) {
          const rows = select.all() as { id: string; size: number }[];
          if (rows.length === 0) break;
          for (const row of rows) {
            remove.run(row.id);
            total -= row.size;
            n++;
            if (total <= target) break;
          }
        }
        return n;
      };
      if (total > limits.maxBytes) {
        shed(this.stmt.oldestResults, this.stmt.deleteResult);
        if (total > limits.maxBytes) {
          deleted += shed(this.stmt.oldestSummaries, this.stmt.deleteSummary);
          this.stmt.orphanResults.run();
        }
      }
    })();
    // Give the freed pages back to the file system, so the file follows the budget.
    this.db.pragma('incremental_vacuum');
    return deleted;
  }
}

/**
 * Bring the tables to HISTORY_SCHEMA. Schema 0 (before versions were kept) had one `tasks`
 * table with every task's params and whole result in its row; it becomes summaries, full
 * results apart, and payloads only for unfinished tasks. Then the file is vacuumed once.
 */
function migrate(db: StateDatabase): void {
  const version = Number(getMeta(db, SCHEMA_KEY) ?? '0');
  if (version === HISTORY_SCHEMA) {
    createTables(db);
    return;
  }
  const file = db.name;
  if (!Number.isInteger(version) || version > HISTORY_SCHEMA) {
    throw new StateDatabaseError(
      `state database ${file} holds task history schema ${String(getMeta(db, SCHEMA_KEY))}, ` +
        `newer than this vigil's ${HISTORY_SCHEMA}; run the newer vigil or move it aside`,
    );
  }
  const old = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tasks'")
    .get();
  let moved = 0;
  try {
    db.transaction(() => {
      if (old) {
        db.exec('ALTER TABLE tasks RENAME TO tasks_v0; DROP INDEX IF EXISTS tasks_finish');
      }
      createTables(db);
      if (old) {
        moved = migrateFromV0(db);
        db.exec('DROP TABLE tasks_v0');
      }
      setMeta(db, SCHEMA_KEY, String(HISTORY_SCHEMA));
    })();
  } catch (e) {
    throw new StateDatabaseError(
      `cannot migrate the task history in ${file} to schema ${HISTORY_SCHEMA} ` +
        `(${messageOf(e)}); it is left as it was`,
    );
  }
  if (!old) return;
  log.notice(`task history in ${file}: ${moved} tasks migrated to schema ${HISTORY_SCHEMA}`);
  try {
    // Schema 0 rows could be megabytes each: give the space back, and keep giving it back.
    db.pragma('auto_vacuum = INCREMENTAL');
    db.exec('VACUUM');
  } catch (e) {
    log.warning(`cannot vacuum ${file} after the migration: ${messageOf(e)}`);
  }
}

/** A schema-0 row: the summary's columns (less privileged and size), params and checkpoint. */
interface V0Row extends Omit<SummaryRow, 'privileged' | 'result' | 'size'> {
  rowid: number;
  params: string;
  result: string | null;
  checkpoint: string | null;
}

function migrateFromV0(db: StateDatabase): number {
  // A few rows at a time: a schema-0 row of a big batch holds megabytes of hex.
  const page = db.prepare('SELECT rowid, * FROM tasks_v0 WHERE rowid > ? ORDER BY rowid LIMIT 8');
  const insert = db.prepare(`INSERT INTO tasks (${SUMMARY_COLUMNS})
    VALUES (@id, @kind, @owner_uid, @privileged, @state, @result, @error_name, @error_message,
      @phase, @done, @total, @progress, @created_time, @start_time, @finish_time, @size)`);
  const insertResult = db.prepare('INSERT INTO task_results (id, result, size) VALUES (?, ?, ?)');
  const insertPayload = db.prepare(
    'INSERT INTO task_payloads (id, params, checkpoint, size) VALUES (?, ?, ?, ?)',
  );
  let last = 0;
  let moved = 0;
  for (;;) {
    const rows = page.all(last) as V0Row[];
    if (rows.length === 0) return moved;
    for (const row of rows) {
      last = row.rowid;
      let result: TypedDict = {};
      try {
        result = decodeDict(row.result);
      } catch (e) {
        log.warning(`task ${row.id}: its stored result is unreadable (${messageOf(e)}); dropped`);
      }
      const small = smallResult(result);
      const state = row.state as TaskState;
      // Schema 0 did not record privilege; only root and the vigil group start RandomX work.
      const privileged = row.owner_uid === 0 || row.kind.startsWith('randomx-');
      const summary = fromRow({ ...row, privileged: privileged ? 1 : 0, result: '{}', size: 0 });
      insert.run(summaryRow({ ...summary, result: small }));
      if (small !== result) {
        const text = encodeDict(result);
        insertResult.run(row.id, text, text.length);
      }
      if (!FINAL_STATES.has(state)) {
        const size = row.params.length + (row.checkpoint?.length ?? 0);
        insertPayload.run(row.id, row.params, row.checkpoint, size);
      }
      moved++;
    }
  }
}
