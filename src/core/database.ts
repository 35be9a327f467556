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
    // WAL keeps history writes cheap and a SIGKILL never leaves a half-written row.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 2000');
    db.exec('CREATE TABLE IF NOT EXISTS vigil_meta (key TEXT PRIMARY KEY, value TEXT)');
  } catch (e) {
    db.close();
    throw new StateDatabaseError(
      `state database ${file} is corrupt or unwritable (${messageOf(e)}); ` +
        'move it aside or fix its permissions, vigil will not replace it',
    );
  }
  return db;
}
