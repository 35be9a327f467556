import type { StateDatabase } from '../core/database';
import { parseAddressList, splitList } from './addresses';
import type { ProxyClaim } from './proxy';
import type { HostSpec, HostStatus, WakeOutcome } from './watcher';

/**
 * Persistence of the Wake-on-LAN watcher in the daemon's state database: hosts added over
 * D-Bus (restored on restart), every host's wake counters and learned IPv6 addresses, the
 * addresses the sleep proxy has taken over (handed back by the next start after a crash), and
 * the wake history.
 */

/** One wake-history row: a decision, or identical decisions folded together (`count`). */
export interface WakeHistoryRow {
  readonly id: number;
  readonly time: number;
  readonly host: string;
  readonly mac: string;
  readonly interface: string;
  readonly trigger: string;
  readonly requesterIp: string;
  readonly requesterMac: string;
  readonly outcome: WakeOutcome;
  readonly count: number;
  readonly lastTime: number;
  /** Milliseconds from a `woke` to the host's first sign of life; 0 = not (yet) seen. */
  readonly aliveAfter: number;
}

export type NewWakeHistoryRow = Omit<WakeHistoryRow, 'id'>;

/** Columns added to wol_hosts after version 1 (older databases gain them on open). */
const HOST_COLUMNS_1_1: [string, string][] = [
  ['ip6', "TEXT NOT NULL DEFAULT ''"],
  ['proxy', 'INTEGER NOT NULL DEFAULT 0'],
  ['wake_ports', "TEXT NOT NULL DEFAULT ''"],
  ['ignore_from', "TEXT NOT NULL DEFAULT ''"],
];

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
      CREATE TABLE IF NOT EXISTS wol_learned_ip6 (
        name TEXT NOT NULL,
        mac TEXT NOT NULL,
        address TEXT NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (name, address)
      );
      CREATE TABLE IF NOT EXISTS wol_proxy_claims (
        interface TEXT NOT NULL,
        address TEXT NOT NULL,
        host TEXT NOT NULL,
        host_mac TEXT NOT NULL,
        since INTEGER NOT NULL,
        PRIMARY KEY (interface, address)
      );
      CREATE TABLE IF NOT EXISTS wol_wake_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        host TEXT NOT NULL,
        mac TEXT NOT NULL,
        interface TEXT NOT NULL,
        trigger TEXT NOT NULL,
        requester_ip TEXT NOT NULL,
        requester_mac TEXT NOT NULL,
        outcome TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_time INTEGER NOT NULL,
        alive_after INTEGER NOT NULL
      );
    `);
    this.addMissingColumns('wol_hosts', HOST_COLUMNS_1_1);
    this.addMissingColumns('wol_host_stats', [['last_wake_reason', "TEXT NOT NULL DEFAULT ''"]]);
  }

  private addMissingColumns(table: string, columns: [string, string][]): void {
    const have = new Set(
      (this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map(
        (c) => c.name,
      ),
    );
    for (const [name, type] of columns) {
      if (!have.has(name)) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${type}`);
    }
  }

  saveHost(spec: HostSpec, addedAt = Date.now()): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO wol_hosts
           (name, mac, ip, interface, only_from, timeout, cooldown, added_at,
            ip6, proxy, wake_ports, ignore_from)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
        spec.ip6.join(','),
        spec.proxy ? 1 : 0,
        spec.wakePorts.map((p) => `${p.protocol}/${p.port}`).join(','),
        spec.ignoreFrom.map((r) => r.text).join(','),
      );
  }

  deleteHost(name: string): void {
    this.db.prepare('DELETE FROM wol_hosts WHERE name = ?').run(name);
    this.db.prepare('DELETE FROM wol_host_stats WHERE name = ?').run(name);
    this.db.prepare('DELETE FROM wol_learned_ip6 WHERE name = ?').run(name);
  }

  /** Hosts added over D-Bus, as stored (re-validated by the caller, the machine may have changed). */
  loadHosts(): StoredHost[] {
    const rows = this.db
      .prepare(
        `SELECT name, mac, ip, interface, only_from, timeout, cooldown,
                ip6, proxy, wake_ports, ignore_from
           FROM wol_hosts ORDER BY added_at, name`,
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
      ip6: splitList(r.ip6),
      proxy: r.proxy !== 0,
      wakePorts: splitList(r.wake_ports),
      ignoreFrom: splitList(r.ignore_from),
    }));
  }

  saveStats(name: string, status: HostStatus): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO wol_host_stats
           (name, last_wake, wake_count, last_wake_duration, last_wake_reason)
         VALUES (?, ?, ?, ?, ?)`,
      )
      .run(name, status.lastWake, status.wakeCount, status.lastWakeDuration, status.lastWakeReason);
  }

  loadStats(
    name: string,
  ):
    Pick<HostStatus, 'lastWake' | 'wakeCount' | 'lastWakeDuration' | 'lastWakeReason'> | undefined {
    const row = this.db
      .prepare(
        `SELECT last_wake, wake_count, last_wake_duration, last_wake_reason
           FROM wol_host_stats WHERE name = ?`,
      )
      .get(name) as
      | {
          last_wake: number;
          wake_count: number;
          last_wake_duration: number;
          last_wake_reason: string;
        }
      | undefined;
    return row
      ? {
          lastWake: row.last_wake,
          wakeCount: row.wake_count,
          lastWakeDuration: row.last_wake_duration,
          lastWakeReason: row.last_wake_reason,
        }
      : undefined;
  }

  /** The learned IPv6 addresses of a host, replaced as a whole (they change rarely). */
  saveLearned(
    name: string,
    mac: string,
    learned: readonly { address: string; lastSeen: number }[],
  ): void {
    const write = this.db.transaction(() => {
      this.db.prepare('DELETE FROM wol_learned_ip6 WHERE name = ?').run(name);
      const insert = this.db.prepare(
        'INSERT INTO wol_learned_ip6 (name, mac, address, last_seen) VALUES (?, ?, ?, ?)',
      );
      for (const l of learned) insert.run(name, mac, l.address, l.lastSeen);
    });
    write();
  }

  /** Learned addresses of `name`, if they were learned from the same MAC (else they are not its). */
  loadLearned(name: string, mac: string): { address: string; lastSeen: number }[] {
    const rows = this.db
      .prepare(
        'SELECT address, last_seen FROM wol_learned_ip6 WHERE name = ? AND mac = ? ORDER BY last_seen',
      )
      .all(name, mac) as { address: string; last_seen: number }[];
    return rows.map((r) => ({ address: r.address, lastSeen: r.last_seen }));
  }

  saveClaim(claim: ProxyClaim, since = Date.now()): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO wol_proxy_claims (interface, address, host, host_mac, since)
         VALUES (?, ?, ?, ?, ?)`,
      )
      .run(claim.interface, claim.address, claim.hostName, claim.hostMac, since);
  }

  deleteClaim(claim: ProxyClaim): void {
    this.db
      .prepare('DELETE FROM wol_proxy_claims WHERE interface = ? AND address = ?')
      .run(claim.interface, claim.address);
  }

  loadClaims(): ProxyClaim[] {
    const rows = this.db
      .prepare('SELECT interface, address, host, host_mac FROM wol_proxy_claims ORDER BY since')
      .all() as { interface: string; address: string; host: string; host_mac: string }[];
    return rows.map((r) => ({
      interface: r.interface,
      address: r.address,
      hostName: r.host,
      hostMac: r.host_mac,
    }));
  }

  /** Insert new rows and update folded ones in one transaction; returns the new rows' ids. */
  writeWakes(
    inserts: readonly NewWakeHistoryRow[],
    updates: readonly { id: number; count: number; lastTime: number; aliveAfter: number }[],
  ): number[] {
    const insert = this.db.prepare(
      `INSERT INTO wol_wake_history
         (time, host, mac, interface, trigger, requester_ip, requester_mac, outcome,
          count, last_time, alive_after)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const update = this.db.prepare(
      'UPDATE wol_wake_history SET count = ?, last_time = ?, alive_after = ? WHERE id = ?',
    );
    const write = this.db.transaction(() => {
      const ids = inserts.map((r) =>
        Number(
          insert.run(
            r.time,
            r.host,
            r.mac,
            r.interface,
            r.trigger,
            r.requesterIp,
            r.requesterMac,
            r.outcome,
            r.count,
            r.lastTime,
            r.aliveAfter,
          ).lastInsertRowid,
        ),
      );
      for (const u of updates) update.run(u.count, u.lastTime, u.aliveAfter, u.id);
      return ids;
    });
    return write();
  }

  /** Keep the newest `keep` rows. */
  pruneWakes(keep: number): void {
    this.db
      .prepare(
        `DELETE FROM wol_wake_history WHERE id <= (
           SELECT id FROM wol_wake_history ORDER BY id DESC LIMIT 1 OFFSET ?)`,
      )
      .run(keep);
  }

  /** Newest first. */
  loadWakes(limit: number): WakeHistoryRow[] {
    const rows = this.db
      .prepare(
        `SELECT id, time, host, mac, interface, trigger, requester_ip, requester_mac, outcome,
                count, last_time, alive_after
           FROM wol_wake_history ORDER BY id DESC LIMIT ?`,
      )
      .all(limit) as {
      id: number;
      time: number;
      host: string;
      mac: string;
      interface: string;
      trigger: string;
      requester_ip: string;
      requester_mac: string;
      outcome: WakeOutcome;
      count: number;
      last_time: number;
      alive_after: number;
    }[];
    return rows.map((r) => ({
      id: r.id,
      time: r.time,
      host: r.host,
      mac: r.mac,
      interface: r.interface,
      trigger: r.trigger,
      requesterIp: r.requester_ip,
      requesterMac: r.requester_mac,
      outcome: r.outcome,
      count: r.count,
      lastTime: r.last_time,
      aliveAfter: r.alive_after,
    }));
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
  readonly ip6: string[];
  readonly proxy: boolean;
  readonly wakePorts: string[];
  readonly ignoreFrom: string[];
}

interface StoredHostRow {
  name: string;
  mac: string;
  ip: string;
  interface: string;
  only_from: string;
  timeout: number;
  cooldown: number;
  ip6: string;
  proxy: number;
  wake_ports: string;
  ignore_from: string;
}
