import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStateDatabase } from '../../src/core/database';
import { parseIpv6 } from '../../src/wol/addresses';
import { parseFrame } from '../../src/wol/frames';
import { FOLD_MS, NEW_ROWS_PER_SECOND, WakeHistory } from '../../src/wol/history';
import { WolStore } from '../../src/wol/store';
import type { WakeOutcome, WakeRecord } from '../../src/wol/watcher';
import { ipFrame, mac } from './craft';

const record = (time: number, outcome: WakeOutcome, requesterIp = '10.9.0.2'): WakeRecord => ({
  time,
  host: 'sleepy',
  mac: '02:00:00:00:00:03',
  interface: 'eth0',
  trigger: 'tcp/22',
  requesterIp,
  requesterMac: '02:00:00:00:00:02',
  outcome,
});

describe('wake history', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-wol-history-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('repeated refusals fold into one row with a count; every wake is a row; newest first', () => {
    const h = new WakeHistory(undefined, 100);
    h.record(record(1000, 'cooldown'));
    h.record(record(2000, 'cooldown'));
    h.record(record(3000, 'cooldown', '10.9.0.4'));
    h.record(record(4000, 'woke'));
    h.record(record(4500, 'woke'));
    h.record(record(2000 + FOLD_MS, 'cooldown')); // FOLD_MS after the last one: a new row
    const rows = h.list(20_000, 0);
    expect(rows.map((r) => [r.outcome, r.requesterIp, r.count])).toEqual([
      ['cooldown', '10.9.0.2', 1],
      ['woke', '10.9.0.2', 1],
      ['woke', '10.9.0.2', 1],
      ['cooldown', '10.9.0.4', 1],
      ['cooldown', '10.9.0.2', 2],
    ]);
    expect(rows[4].lastTime).toBe(2000);
    expect(h.list(20_000, 2)).toHaveLength(2);
  });

  test('the time to wake lands on the wake row; a flood of new requesters is counted, not written', () => {
    const h = new WakeHistory(undefined, 10_000);
    h.record(record(1000, 'woke'));
    h.alive('sleepy', 4200);
    h.alive('sleepy', 9999); // only the first sign of life after a wake counts
    expect(h.list(2000, 1)[0]).toMatchObject({ outcome: 'woke', aliveAfter: 4200 });
    for (let i = 0; i < 1000; i++)
      h.record(record(5000, 'not-allowed', `10.9.${i >> 8}.${i & 255}`));
    expect(h.list(5000, 0).length).toBeLessThanOrEqual(NEW_ROWS_PER_SECOND + 1);
    expect(h.dropped).toBeGreaterThan(900);
    // A wake is always written, even in a flood.
    h.record(record(5000, 'woke', '10.9.9.9'));
    expect(h.list(5000, 1)[0]).toMatchObject({ outcome: 'woke', requesterIp: '10.9.9.9' });
  });

  test('in the state database: written in batches, updated when folded, bounded, kept across reopening', () => {
    let db = openStateDatabase(path.join(dir, 'state'));
    let h = new WakeHistory(new WolStore(db), 5);
    h.record(record(1000, 'port-not-listed'));
    h.flush(1000);
    h.record(record(1500, 'port-not-listed'));
    h.record(record(1600, 'woke'));
    h.alive('sleepy', 300);
    h.flush(2000);
    expect(h.list(2000, 0).map((r) => [r.outcome, r.count, r.aliveAfter])).toEqual([
      ['woke', 1, 300],
      ['port-not-listed', 2, 0],
    ]);
    for (let i = 0; i < 20; i++) h.record(record(3000 + i * 1000, 'woke'));
    h.flush(30_000);
    db.close();
    db = openStateDatabase(path.join(dir, 'state'));
    h = new WakeHistory(new WolStore(db), 5);
    const rows = h.list(40_000, 0);
    expect(rows).toHaveLength(5);
    expect(rows[0].time).toBe(22_000);
    db.close();
  });
});

describe('IPv4 and IPv6 packets', () => {
  const base = {
    sourceMac: mac('02:00:00:00:00:02'),
    destinationMac: mac('02:00:00:00:00:01'),
    protocol: 'tcp' as const,
    destinationPort: 22,
  };

  test('TCP and UDP ports and SYN over both families', () => {
    expect(
      parseFrame(ipFrame({ ...base, source: '10.9.0.2', destination: '10.9.0.3' })),
    ).toMatchObject({
      kind: 'ip',
      family: 4,
      transport: 'tcp',
      destinationPort: 22,
      syn: true,
      destinationMac: '02:00:00:00:00:01',
    });
    const synAck = ipFrame({ ...base, source: 'fd00::2', destination: 'fd00::3', flags: 0x12 });
    expect(parseFrame(synAck)).toMatchObject({
      kind: 'ip',
      family: 6,
      transport: 'tcp',
      syn: false,
    });
    const udp = ipFrame({
      ...base,
      protocol: 'udp',
      source: 'fd00::2',
      destination: 'fd00::3',
      destinationPort: 51820,
    });
    expect(parseFrame(udp)).toMatchObject({ transport: 'udp', destinationPort: 51820 });
  });

  test('IPv6 extension headers are walked; a later fragment has no ports; loops and cuts are malformed', () => {
    const plain = ipFrame({ ...base, source: 'fd00::2', destination: 'fd00::3' });
    const withExt = (next: number, ext: Buffer): Buffer => {
      const f = Buffer.concat([plain.subarray(0, 54), ext, plain.subarray(54)]);
      ext[0] = f[20];
      ext.copy(f, 54);
      f[20] = next;
      f.writeUInt16BE(plain.readUInt16BE(18) + ext.length, 18);
      return f;
    };
    const hopByHop = withExt(0, Buffer.alloc(8));
    expect(parseFrame(hopByHop)).toMatchObject({ transport: 'tcp', destinationPort: 22 });
    const first = Buffer.alloc(8);
    const firstFragment = withExt(44, first);
    expect(parseFrame(firstFragment)).toMatchObject({ transport: 'tcp', destinationPort: 22 });
    const later = Buffer.alloc(8);
    later.writeUInt16BE(0x0010, 2); // offset 2 (×8 bytes)
    expect(parseFrame(withExt(44, later))).toMatchObject({ kind: 'ip', transport: 'other' });
    const loop = Buffer.alloc(8 * 9);
    for (let i = 0; i < 9; i++) loop[i * 8] = 60; // nine destination-options headers
    const looped = Buffer.concat([plain.subarray(0, 54), loop]);
    looped[20] = 60;
    looped.writeUInt16BE(loop.length, 18);
    expect(parseFrame(looped)).toMatchObject({
      kind: 'malformed',
      reason: 'too many IPv6 extension headers',
    });
    const cut = Buffer.from(hopByHop);
    cut[55] = 200; // header longer than the packet
    expect(parseFrame(cut)).toMatchObject({
      kind: 'malformed',
      reason: 'truncated IPv6 extension header',
    });
    expect(parseFrame(plain.subarray(0, 60))).toMatchObject({ kind: 'malformed' });
  });

  test('IPv4: a later fragment has no ports; a bad header or length is malformed', () => {
    const f = ipFrame({ ...base, source: '10.9.0.2', destination: '10.9.0.3' });
    const frag = Buffer.from(f);
    frag.writeUInt16BE(0x0004, 20);
    expect(parseFrame(frag)).toMatchObject({ kind: 'ip', transport: 'other' });
    const ihl = Buffer.from(f);
    ihl[14] = 0x44;
    expect(parseFrame(ihl)).toMatchObject({ kind: 'malformed' });
    const long = Buffer.from(f);
    long.writeUInt16BE(1500, 16);
    expect(parseFrame(long)).toMatchObject({ kind: 'malformed', reason: 'truncated IPv4 packet' });
    expect(parseIpv6('fd00::3')).toBeDefined();
  });
});
