import type { StateDatabase } from '../core/database';
import { parseAddressList } from './addresses';
import type { HostSpec, HostStatus } from './watcher';

/**
 * Persistence of the Wake-on-LAN watcher in the daemon's state database: hosts added over
 * D-Bus (restored on restart) and, for every host, its wake counters.
 */
export class WolStore {
  constructor(private readonly db: StateDatabase) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS wol_hosts (
        name TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        ip TEXT NOT NULL,
        interface TEXT NOT NULL,
        only_from TEXT NOT NULL,
        timeout INTEGER NOT NULL,
        cooldown INTEGER NOT NULL,
        added_at INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS wol_host_stats (
        name TEXT PRIMARY KEY,
        last_wake INTEGER NOT NULL,
        wake_count INTEGER NOT NULL,
        last_wake_duration INTEGER NOT NULL
      );
    `);
  }

  saveHost(spec: HostSpec, addedAt = Date.now()): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO wol_hosts
           (name, mac, ip, interface, only_from, timeout, cooldown, added_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        spec.name,
        spec.mac,
        spec.ip,
        spec.interface,
        spec.onlyFrom.map((r) => r.text).join(','),
        spec.timeout,
        spec.cooldown,
        addedAt,
      );
  }

  deleteHost(name: string): void {
    this.db.prepare('DELETE FROM wol_hosts WHERE name = ?').run(name);
    this.db.prepare('DELETE FROM wol_host_stats WHERE name = ?').run(name);
  }

  /** Hosts added over D-Bus, as stored (re-validated by the caller, the machine may have changed). */
  loadHosts(): StoredHost[] {
    const rows = this.db
      .prepare(
        'SELECT name, mac, ip, interface, only_from, timeout, cooldown FROM wol_hosts ORDER BY added_at, name',
      )
      .all() as StoredHostRow[];
    return rows.map((r) => ({
      name: r.name,
      mac: r.mac,
      ip: r.ip,
      interface: r.interface,
      onlyFrom: r.only_from ? parseAddressList(r.only_from).map((a) => a.text) : [],
      timeout: r.timeout,
      cooldown: r.cooldown,
    }));
  }

  saveStats(name: string, status: HostStatus): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO wol_host_stats (name, last_wake, wake_count, last_wake_duration)
         VALUES (?, ?, ?, ?)`,
      )
      .run(name, status.lastWake, status.wakeCount, status.lastWakeDuration);
  }

  loadStats(
    name: string,
  ): Pick<HostStatus, 'lastWake' | 'wakeCount' | 'lastWakeDuration'> | undefined {
    const row = this.db
      .prepare(
        'SELECT last_wake, wake_count, last_wake_duration FROM wol_host_stats WHERE name = ?',
      )
      .get(name) as
      { last_wake: number; wake_count: number; last_wake_duration: number } | undefined;
    return row
      ? {
          lastWake: row.last_wake,
          wakeCount: row.wake_count,
          lastWakeDuration: row.last_wake_duration,
        }
      : undefined;
  }
}

export interface StoredHost {
  readonly name: string;
  readonly mac: string;
  readonly ip: string;
  readonly interface: string;
  readonly onlyFrom: string[];
  readonly timeout: number;
  readonly cooldown: number;
}

interface StoredHostRow {
  name: string;
  mac: string;
  ip: string;
  interface: string;
  only_from: string;
  timeout: number;
  cooldown: number;
}
