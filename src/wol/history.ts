import type { NewWakeHistoryRow, WakeHistoryRow, WolStore } from './store';
import type { WakeRecord } from './watcher';

/**
 * The wake history: every decision about a request for a sleeping host, kept in the state
 * database, newest first, at most `limit` rows. A requester repeating itself (a kernel's ARP
 * retries, TCP's SYN retransmissions) would write a row per frame, so identical refusals
 * within FOLD_MS fold into one row with a count, and new rows beyond NEW_ROWS_PER_SECOND are
 * counted but not written: a flood costs neither the disk nor the event loop. Rows are written
 * in one transaction per flush (the service's tick), not one per frame.
 */

export const DEFAULT_WAKE_HISTORY_LIMIT = 1000;
export const MAX_WAKE_HISTORY_LIMIT = 100_000;
/** Identical refusals (host, trigger, requester, outcome) this close together share a row. */
export const FOLD_MS = 10_000;
export const NEW_ROWS_PER_SECOND = 50;

interface PendingRow {
  id: number | undefined;
  row: NewWakeHistoryRow & { count: number; lastTime: number; aliveAfter: number };
  dirty: boolean;
}

export class WakeHistory {
  /** Decisions not recorded because new rows came faster than NEW_ROWS_PER_SECOND. */
  dropped = 0;
  private readonly open = new Map<string, PendingRow>();
  private readonly lastWoke = new Map<string, PendingRow>();
  private dirty: PendingRow[] = [];
  /** Without a store (tests, no state directory), rows live here. */
  private readonly memory: WakeHistoryRow[] = [];
  private nextMemoryId = 1;
  private tokens = NEW_ROWS_PER_SECOND;
  private tokensAt = 0;
  private writes = 0;

  constructor(
    private readonly store: WolStore | undefined,
    readonly limit = DEFAULT_WAKE_HISTORY_LIMIT,
  ) {}

  record(r: WakeRecord): void {
    const key = `${r.host}|${r.trigger}|${r.requesterIp}|${r.outcome}`;
    const open = this.open.get(key);
    if (r.outcome !== 'woke' && open && r.time - open.row.lastTime < FOLD_MS) {
      open.row.count++;
      open.row.lastTime = r.time;
      this.markDirty(open);
      return;
    }
    this.tokens = Math.min(
      NEW_ROWS_PER_SECOND,
      this.tokens + ((r.time - this.tokensAt) / 1000) * NEW_ROWS_PER_SECOND,
    );
    this.tokensAt = r.time;
    // A wake is always written: it is rare (cooldown) and what the history is for.
    if (this.tokens < 1 && r.outcome !== 'woke') {
      this.dropped++;
      return;
    }
    this.tokens = Math.max(0, this.tokens - 1);
    const pending: PendingRow = {
      id: undefined,
      row: { ...r, count: 1, lastTime: r.time, aliveAfter: 0 },
      dirty: false,
    };
    this.open.set(key, pending);
    if (r.outcome === 'woke') this.lastWoke.set(r.host, pending);
    this.markDirty(pending);
  }

  /** The host was seen after a wake: note how long it took, on that wake's row. */
  alive(host: string, afterMs: number): void {
    const pending = this.lastWoke.get(host);
    if (!pending) return;
    this.lastWoke.delete(host);
    pending.row.aliveAfter = Math.max(1, afterMs);
    this.markDirty(pending);
  }

  private markDirty(p: PendingRow): void {
    if (p.dirty) return;
    p.dirty = true;
    this.dirty.push(p);
  }

  /** Write what changed; forget open rows too old to fold into. */
  flush(now: number): void {
    if (this.dirty.length > 0) {
      const rows = this.dirty;
      this.dirty = [];
      for (const p of rows) p.dirty = false;
      if (this.store) this.writeToStore(rows);
      else this.writeToMemory(rows);
    }
    for (const [key, p] of this.open) {
      if (now - p.row.lastTime >= FOLD_MS) this.open.delete(key);
    }
  }

  private writeToStore(rows: PendingRow[]): void {
    const store = this.store as WolStore;
    const inserts = rows.filter((p) => p.id === undefined);
    const updates = rows
      .filter((p) => p.id !== undefined)
      .map((p) => ({
        id: p.id as number,
        count: p.row.count,
        lastTime: p.row.lastTime,
        aliveAfter: p.row.aliveAfter,
      }));
    const ids = store.writeWakes(
      inserts.map((p) => ({ ...p.row })),
      updates,
    );
    inserts.forEach((p, i) => (p.id = ids[i]));
    this.writes += inserts.length;
    if (this.writes >= Math.max(1, Math.floor(this.limit / 10))) {
      this.writes = 0;
      store.pruneWakes(this.limit);
    }
  }

  private writeToMemory(rows: PendingRow[]): void {
    for (const p of rows) {
      if (p.id === undefined) p.id = this.nextMemoryId++;
      const at = this.memory.findIndex((m) => m.id === p.id);
      const row: WakeHistoryRow = { id: p.id, ...p.row };
      if (at >= 0) this.memory[at] = row;
      else this.memory.push(row);
    }
    if (this.memory.length > this.limit) this.memory.splice(0, this.memory.length - this.limit);
  }

  /** The newest `limit` rows (0: all that are kept), newest first. */
  list(now: number, limit: number): WakeHistoryRow[] {
    this.flush(now);
    const n = limit === 0 ? this.limit : Math.min(limit, this.limit);
    if (this.store) return this.store.loadWakes(n);
    return this.memory.slice(-n).reverse();
  }
}
