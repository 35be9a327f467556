import { EventEmitter } from 'node:events';
import { sqliteCode } from '../core/database';
import { messageOf } from '../core/errors';
import { log } from '../core/log';

/** How often a failed history write is tried again (the disk may have space again). */
export const RETRY_MS = 1000;

/** The errno behind the SQLite result codes a state directory's trouble shows up as. */
const ERRNO: Record<string, string> = {
  SQLITE_FULL: 'ENOSPC',
  SQLITE_READONLY: 'EROFS',
  SQLITE_IOERR: 'EIO',
  SQLITE_PERM: 'EACCES',
  SQLITE_CANTOPEN: 'EACCES',
};

/** `path: errno (SQLITE_CODE): message`, for the log and Daemon.Degraded. */
export function describeWriteError(file: string, e: unknown): string {
  const code = sqliteCode(e);
  const base = code?.replace(/^(SQLITE_[A-Z]+).*$/, '$1');
  const errno = base ? ERRNO[base] : undefined;
  const why = [errno, code && `(${code})`].filter(Boolean).join(' ');
  return `cannot write the task history to ${file}: ${why ? why + ': ' : ''}${messageOf(e)}`;
}

interface Pending {
  write: () => void;
  onWritten?: () => void;
}

export interface RecorderEvents {
  /** `degraded` changed: a write failed (the reason), or writes work again (''). */
  degradedChanged: [];
}

/**
 * History writes that survive a failing disk. A write that fails is kept (the latest one per
 * key) and tried again every RETRY_MS until it lands; meanwhile `degraded` says why, and the
 * failure is logged once, not once per write. Nothing here throws: the task machinery goes on
 * in memory (results, signals, slots) whatever the disk does.
 */
export class HistoryRecorder extends EventEmitter<RecorderEvents> {
  degraded = '';
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    /** A small write that tells whether the disk takes writes again, when nothing is pending. */
    private readonly probe: () => void,
    private readonly retryMs = RETRY_MS,
  ) {
    super();
  }

  /** Keys (task ids) whose latest write is not on disk yet. */
  has(key: string): boolean {
    return this.pending.has(key);
  }

  /**
   * Run `write` now; if it fails, keep it to retry (replacing an older one for `key`).
   * `onWritten` runs once it is on disk, now or later. Returns whether it is on disk now.
   */
  write(key: string, write: () => void, onWritten?: () => void): boolean {
    // A newer write for the key supersedes the older one, but not what waited on it.
    const older = this.pending.get(key)?.onWritten;
    const done =
      older && onWritten
        ? () => {
            older();
            onWritten();
          }
        : (older ?? onWritten);
    this.pending.delete(key);
    try {
      write();
    } catch (e) {
      this.pending.set(key, { write, onWritten: done });
      this.failed(e);
      return false;
    }
    done?.();
    if (this.pending.size === 0) this.recovered();
    return true;
  }

  /** A write that must land now or be refused (a new task): throws, and reports the failure. */
  writeOrThrow(write: () => void): void {
    try {
      write();
    } catch (e) {
      this.failed(e);
      throw e;
    }
    if (this.pending.size === 0) this.recovered();
  }

  /** Record the failure (logged once per reason) and keep retrying until writes work again. */
  failed(e: unknown): void {
    const reason = describeWriteError(this.file, e);
    if (reason !== this.degraded) {
      log.error(reason);
      this.degraded = reason;
      this.emit('degradedChanged');
    }
    this.timer ??= setInterval(() => this.retry(), this.retryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private retry(): void {
    try {
      if (this.pending.size === 0) this.probe();
      for (const [key, p] of this.pending) {
        p.write();
        this.pending.delete(key);
        p.onWritten?.();
      }
    } catch (e) {
      this.failed(e);
      return;
    }
    this.recovered();
  }

  private recovered(): void {
    if (this.degraded === '') return;
    this.stop();
    log.notice(`task history writes to ${this.file} work again`);
    this.degraded = '';
    this.emit('degradedChanged');
  }
}
