import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { messageOf } from './errors';

export type StateDatabase = Database.Database;

/** Raised when the state database cannot be used; the daemon reports it and exits. */
export class StateDatabaseError extends Error {}

/**
 * Open (or create) the daemon's SQLite state database in `stateDir`.
 * A corrupt or unwritable database is an error the operator must see: it is never replaced.
 */
export function openStateDatabase(stateDir: string): StateDatabase {
  const file = path.join(stateDir, 'vigil.db');
  try {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw new StateDatabaseError(`cannot create state directory ${stateDir}: ${messageOf(e)}`);
  }
  let db: StateDatabase;
  try {
    db = new Database(file);
  } catch (e) {
    throw new StateDatabaseError(`cannot open state database ${file}: ${messageOf(e)}`);
  }
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(String(check));
    // Freed pages go back to the file system when the history prunes (a new database only;
    // the history's migration turns it on for an old one).
    db.pragma('auto_vacuum = INCREMENTAL');
    // WAL keeps history writes cheap and a SIGKILL never leaves a half-written row.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 2000');
    db.pragma(`journal_size_limit = ${4 * 1024 * 1024}`);
    db.exec('CREATE TABLE IF NOT EXISTS vigil_meta (key TEXT PRIMARY KEY, value TEXT)');
    probeWrite(db);
  } catch (e) {
    db.close();
    throw new StateDatabaseError(
      `state database ${file} is corrupt or unwritable (${messageOf(e)}); ` +
        'move it aside or fix its permissions, vigil will not replace it',
    );
  }
  return db;
}

/**
 * Write once at open, so a database that cannot be written (a read-only state directory or
 * file) is refused at start, not found out by the first task. A full disk is not fatal here:
 * the history reports it (Daemon.Degraded) and retries its writes when space returns.
 */
function probeWrite(db: StateDatabase): void {
  try {
    setMeta(db, 'opened_at', String(Date.now()));
  } catch (e) {
    if (sqliteCode(e) === 'SQLITE_FULL') return;
    throw e;
  }
}

/** The SQLite result code of an error from better-sqlite3 (`SQLITE_FULL`, ...), if any. */
export function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** One value of the `vigil_meta` table (schema versions and the like). */
export function getMeta(db: StateDatabase, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM vigil_meta WHERE key = ?').get(key) as
    { value: string | null } | undefined;
  return row?.value ?? undefined;
}

export function setMeta(db: StateDatabase, key: string, value: string): void {
  db.prepare('INSERT OR REPLACE INTO vigil_meta (key, value) VALUES (?, ?)').run(key, value);
}
