/**
 * A config reload's Wake-on-LAN hosts, on the service with stub I/O (nothing is captured or
 * sent): which hosts go, come and change, what is announced, and that a refused reload changes
 * nothing. test/reload.test.ts drives the same through the daemon on a private bus.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStateDatabase } from '../src/core/database';
import { VigilError } from '../src/core/errors';
import { WolService, type HostProperty } from '../src/wol/service';
import type { Host, HostSpec } from '../src/wol/watcher';
import { quietLog as quiet, stubIo } from './helpers/wol';

const io = stubIo();

function host(name: string, mac: string, ip: string, extra: Partial<HostSpec> = {}): HostSpec {
  return {
    name,
    mac,
    ip,
    ip6: [],
    interface: 'lo',
    onlyFrom: [],
    ignoreFrom: [],
    timeout: 90,
    cooldown: 10,
    proxy: false,
    wakePorts: [],
    source: 'config',
    ...extra,
  };
}

const A = host('alpha', '02:00:00:00:00:0a', '10.9.0.10');
const B = host('beta', '02:00:00:00:00:0b', '10.9.0.11');

interface Seen {
  added: string[];
  removed: string[];
  changed: [string, HostProperty[]][];
}

async function started(configHosts: HostSpec[]): Promise<{ service: WolService; seen: Seen }> {
  const service = new WolService({ log: quiet, io, configHosts });
  await service.start();
  const seen: Seen = { added: [], removed: [], changed: [] };
  service.on('hostAdded', (h) => seen.added.push(h.spec.name));
  service.on('hostRemoved', (h) => seen.removed.push(h.spec.name));
  service.on('hostChanged', (h, props) => seen.changed.push([h.spec.name, props]));
  return { service, seen };
}

const names = (service: WolService): string[] =>
  service
    .listHosts()
    .map((h) => h.spec.name)
    .sort();

describe('WolService.prepareConfigHosts', () => {
  test('adds, removes and changes in place, keeping the changed host’s object and counters', async () => {
    const { service, seen } = await started([A, B]);
    const alpha: Host = service.host('alpha');
    alpha.status.wakeCount = 7;
    const gamma = host('gamma', '02:00:00:00:00:0c', '10.9.0.12');
    const change = service.prepareConfigHosts([
      { ...A, ip: '10.9.0.20', timeout: 30, onlyFrom: [] },
      gamma,
    ])();
    expect(change).toEqual({ added: ['gamma'], removed: ['beta'], changed: ['alpha'] });
    expect(names(service)).toEqual(['alpha', 'gamma']);
    // The same object, so the bus object exported for it reads the new settings.
    expect(service.host('alpha')).toBe(alpha);
    expect(alpha.spec.ip).toBe('10.9.0.20');
    expect(alpha.status.wakeCount).toBe(7);
    expect(seen).toEqual({
      added: ['gamma'],
      removed: ['beta'],
      changed: [['alpha', ['Ip', 'Timeout']]],
    });
    // The old address is free again; the new one is taken.
    expect(() =>
      service.watcher.addHost(host('x', '02:00:00:00:00:99', '10.9.0.10')),
    ).not.toThrow();
    expect(() => service.watcher.addHost(host('y', '02:00:00:00:00:98', '10.9.0.20'))).toThrow(
      /already watched as "alpha"/,
    );
    service.stop();
  });

  test('a changed MAC is a new host; an unchanged file changes nothing', async () => {
    const { service, seen } = await started([A]);
    const before = service.host('alpha');
    expect(service.prepareConfigHosts([A])()).toEqual({ added: [], removed: [], changed: [] });
    expect(seen).toEqual({ added: [], removed: [], changed: [] });
    const change = service.prepareConfigHosts([{ ...A, mac: '02:00:00:00:00:ee' }])();
    expect(change).toEqual({ added: [], removed: [], changed: ['alpha'] });
    expect(seen).toEqual({ added: ['alpha'], removed: ['alpha'], changed: [] });
    expect(service.host('alpha')).not.toBe(before);
    expect(service.host('alpha').spec.mac).toBe('02:00:00:00:00:ee');
    service.stop();
  });

  test('two hosts may swap addresses', async () => {
    const { service } = await started([A, B]);
    service.prepareConfigHosts([
      { ...A, ip: B.ip },
      { ...B, ip: A.ip },
    ])();
    expect(service.host('alpha').spec.ip).toBe(B.ip);
    expect(service.host('beta').spec.ip).toBe(A.ip);
    service.stop();
  });

  test('hosts added over D-Bus stay, unless the file takes their name', async () => {
    const { service, seen } = await started([A]);
    service.addHost('bus-one', '02:00:00:00:00:b1', '10.9.0.31', { interface: 'lo' });
    service.addHost('bus-two', '02:00:00:00:00:b2', '10.9.0.32', { interface: 'lo' });
    const change = service.prepareConfigHosts([
      host('bus-two', '02:00:00:00:00:c2', '10.9.0.42'),
    ])();
    expect(change).toEqual({ added: [], removed: ['alpha'], changed: ['bus-two'] });
    expect(names(service)).toEqual(['bus-one', 'bus-two']);
    expect(service.host('bus-one').spec.source).toBe('bus');
    expect(service.host('bus-two').spec.source).toBe('config');
    expect(seen.removed.sort()).toEqual(['alpha', 'bus-two']);
    service.stop();
  });

  test('a D-Bus host not watched comes back from the state database once its name and address are free', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-reload-hosts-'));
    const db = openStateDatabase(dir);
    const logged: string[] = [];
    const log = {
      ...quiet,
      info: (m: string) => logged.push(m),
      error: (m: string) => logged.push(m),
    };
    try {
      const service = new WolService({ log, io, db, configHosts: [A] });
      await service.start();
      service.addHost('bus-one', '02:00:00:00:00:b1', '10.9.0.31', { interface: 'lo' });
      service.addHost('bus-two', '02:00:00:00:00:b2', '10.9.0.32', { interface: 'lo' });
      service.prepareConfigHosts([A, host('bus-one', '02:00:00:00:00:c1', '10.9.0.41')])();
      service.prepareConfigHosts([A, host('bus-two', '02:00:00:00:00:c2', '10.9.0.42')])();
      // bus-one is free again and returns as it was added; bus-two is the file's now.
      expect(service.host('bus-one').spec).toMatchObject({
        source: 'bus',
        mac: '02:00:00:00:00:b1',
        ip: '10.9.0.31',
      });
      expect(service.host('bus-two').spec).toMatchObject({ source: 'config', ip: '10.9.0.42' });
      expect(logged).toContain('Wake-on-LAN: watching bus-one again, added over D-Bus');
      const seen: string[] = [];
      service.on('hostAdded', (h) => seen.push(`+${h.spec.name}`));
      service.on('hostRemoved', (h) => seen.push(`-${h.spec.name}`));
      // The file drops bus-two and takes bus-two's old address for a host of its own: the file
      // wins, and the D-Bus host stays away, said in the log, without refusing the reload.
      const change = service.prepareConfigHosts([
        A,
        host('gamma', '02:00:00:00:00:0c', '10.9.0.32'),
      ])();
      expect(change).toEqual({ added: ['gamma'], removed: ['bus-two'], changed: [] });
      expect(seen).toEqual(['-bus-two', '+gamma']);
      expect(names(service)).toEqual(['alpha', 'bus-one', 'gamma']);
      expect(logged).toContainEqual(
        expect.stringMatching(
          /cannot restore host "bus-two": 10\.9\.0\.32 on lo is already watched as "gamma"/,
        ),
      );
      // gamma goes: bus-two's address is free, and bus-two returns at this reload.
      expect(service.prepareConfigHosts([A])()).toEqual({
        added: ['bus-two'],
        removed: ['gamma'],
        changed: [],
      });
      expect(service.host('bus-two').spec).toMatchObject({ source: 'bus', ip: '10.9.0.32' });
      service.removeHost('bus-two'); // a D-Bus host again: removable over D-Bus
      await service.stop();
    } finally {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a clash with a host that stays refuses the whole reload before anything changes', async () => {
    const { service, seen } = await started([A, B]);
    service.addHost('bus-one', '02:00:00:00:00:b1', '10.9.0.31', { interface: 'lo' });
    const attempt = (): unknown =>
      service.prepareConfigHosts([
        host('gamma', '02:00:00:00:00:0c', '10.9.0.12'),
        host('delta', '02:00:00:00:00:0d', '10.9.0.31'),
      ]);
    expect(attempt).toThrow(VigilError);
    expect(attempt).toThrow(/10\.9\.0\.31 on lo is already watched as "bus-one"/);
    // Two file hosts on one address are refused the same way.
    expect(() => service.prepareConfigHosts([A, { ...B, ip: A.ip }])).toThrow(/already watched/);
    expect(names(service)).toEqual(['alpha', 'beta', 'bus-one']);
    expect(seen).toEqual({ added: ['bus-one'], removed: [], changed: [] });
    service.stop();
  });

  test('a host on an interface that is not watched is refused', async () => {
    const service = new WolService({ log: quiet, io, configHosts: [A], interfaces: ['lo'] });
    await service.start();
    expect(() => service.prepareConfigHosts([{ ...A, interface: 'eth7' }])).toThrow(
      /eth7, which is not watched/,
    );
    expect(service.host('alpha').spec.interface).toBe('lo');
    service.stop();
  });
});
