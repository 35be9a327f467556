import fs from 'node:fs';
import { Variant } from '../../src/bus/values';
import os from 'node:os';
import path from 'node:path';
import { openStateDatabase } from '../../src/core/database';
import { parseIni } from '../../src/core/ini';
import {
  formatIpv6,
  isOnLink,
  normalizeHostIp,
  normalizeHostIp6,
  normalizeMac,
  parseAddressList,
  parseIpv4,
  parseIpv6,
  rangeContains,
  solicitedNode,
  validateHostName,
  validateInterface,
} from '../../src/wol/addresses';
import { hostsFromConfig, lookupEthers, makeHostSpec } from '../../src/wol/config';
import { magicEthernetFrame, magicPacket } from '../../src/wol/packets';
import { captureFilter, hasNetRawCapability, isEchoReplyFor } from '../../src/wol/io';
import { WolStore } from '../../src/wol/store';
import { wolSettings } from '../../src/wol/capability';
import { hostOptions } from '../../src/wol/dbus';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-wol-config-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const env = () => ({
  ethersPath: path.join(dir, 'ethers'),
  interfaceForIp: (ip: string) => (ip.startsWith('10.9.') ? 'lo' : undefined),
});

describe('addresses', () => {
  test('MACs in the usual spellings normalize; broken or non-unicast ones are refused', () => {
    for (const text of [
      '00:1A:2b:3c:4d:5e',
      '00-1a-2b-3c-4d-5e',
      '001a.2b3c.4d5e',
      '001a2b3c4d5e',
    ]) {
      expect(normalizeMac(text)).toBe('00:1a:2b:3c:4d:5e');
    }
    expect(normalizeMac('0:1:2:3:4:5')).toBe('00:01:02:03:04:05');
    for (const text of [
      '',
      'zz:1a:2b:3c:4d:5e',
      '00:1a:2b:3c:4d',
      '00:1a:2b:3c:4d:5e:6f',
      '00:1a:2b-3c:4d:5e:',
    ]) {
      expect(() => normalizeMac(text)).toThrow(/invalid MAC/);
    }
    expect(() => normalizeMac('ff:ff:ff:ff:ff:ff')).toThrow(/unicast/);
    expect(() => normalizeMac('01:00:5e:00:00:01')).toThrow(/unicast/);
    expect(() => normalizeMac('00:00:00:00:00:00')).toThrow(/unicast/);
  });

  test('host IPs must be unicast dotted quads', () => {
    expect(normalizeHostIp(' 192.168.1.58 ')).toBe('192.168.1.58');
    for (const bad of [
      '192.168.1',
      '192.168.1.256',
      '192.168.01.5',
      '0.0.0.0',
      '255.255.255.255',
      '224.0.0.1',
      '127.0.0.1',
      '::1',
      'host',
    ]) {
      expect(() => normalizeHostIp(bad)).toThrow(/IPv4 address/);
    }
  });

  test('IPv6 text parses every RFC 4291 form and formats as RFC 5952', () => {
    const cases: [string, string][] = [
      ['FD00:0:0:0:0:0:0:3', 'fd00::3'],
      ['fe80::0211:22ff:fe33:4455', 'fe80::211:22ff:fe33:4455'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['::ffff:10.9.0.3', '::ffff:a09:3'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['fd00::', 'fd00::'],
    ];
    for (const [text, canonical] of cases) expect(formatIpv6(parseIpv6(text)!)).toBe(canonical);
    for (const bad of [
      '',
      ':',
      'fd00:::3',
      'fd00::3::4',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      'g::1',
      'fe80::1%eth0',
      '::1.2.3',
      '12345::1',
    ]) {
      expect([bad, parseIpv6(bad)]).toEqual([bad, undefined]);
    }
    expect(normalizeHostIp6('FD00::0003')).toBe('fd00::3');
    for (const bad of ['::', '::1', 'ff02::1', '::ffff:10.9.0.3']) {
      expect(() => normalizeHostIp6(bad)).toThrow(/cannot belong to a machine/);
    }
    expect(formatIpv6(solicitedNode(parseIpv6('fe80::211:22ff:fe33:4455')!))).toBe(
      'ff02::1:ff33:4455',
    );
    const range = parseAddressList('fd00::1/64, fe80::1')[0];
    expect(range.text).toBe('fd00::/64');
    expect(rangeContains(range, parseIpv6('fd00::99')!)).toBe(true);
    expect(rangeContains(range, parseIpv6('fd01::99')!)).toBe(false);
    expect(rangeContains(range, parseIpv4('10.0.0.1')!)).toBe(false); // families never mix
    expect(rangeContains(parseAddressList('0.0.0.0/0')[0], parseIpv6('fd00::1')!)).toBe(false);
    expect(rangeContains(parseAddressList('::/0')[0], parseIpv6('fd00::1')!)).toBe(true);
  });

  test('OnlyFrom lists take addresses and CIDR blocks, separated by commas or spaces', () => {
    expect(parseAddressList('10.0.0.1, 10.1.2.3/16  192.168.1.7').map((r) => r.text)).toEqual([
      '10.0.0.1',
      '10.1.0.0/16',
      '192.168.1.7',
    ]);
    for (const bad of ['10.0.0.1/33', '10.0.0/8', 'x', '10.0.0.1/8/2', '10.0.0.1/']) {
      expect(() => parseAddressList(bad)).toThrow(/invalid requester/);
    }
  });

  test('names and interfaces are checked', () => {
    expect(validateHostName('theobromine')).toBe('theobromine');
    expect(validateHostName('nas-2.home')).toBe('nas-2.home');
    for (const bad of ['', '-x', '.x', 'a b', 'a/b', 'ä', 'x'.repeat(64)]) {
      expect(() => validateHostName(bad)).toThrow(/invalid host name/);
    }
    expect(validateInterface('lo')).toBe('lo');
    expect(() => validateInterface('../etc')).toThrow(/invalid interface/);
    expect(() => validateInterface('x'.repeat(16))).toThrow(/invalid interface/);
    expect(() => validateInterface('nosuchif0')).toThrow(/no network interface/);
  });
});

describe('liveness pings stay on the host’s LAN', () => {
  test('only addresses on a subnet of the host’s interface are on-link', () => {
    expect(isOnLink('lo', '127.0.0.1')).toBe(true);
    expect(isOnLink('lo', '127.44.3.2')).toBe(true);
    expect(isOnLink('lo', '192.168.1.58')).toBe(false);
    expect(isOnLink('no-such-interface', '127.0.0.1')).toBe(false);
    expect(isOnLink('lo', 'not an address')).toBe(false);
  });
});

describe('wakeupd config', () => {
  test('hosts are read from [host:NAME] sections, MACs from /etc/ethers when absent', () => {
    fs.writeFileSync(
      path.join(dir, 'ethers'),
      '# comment\n00:11:22:33:44:55 theobromine\n00:11:22:33:44:66\tcaffeine # trailing\n',
    );
    expect(lookupEthers('caffeine', path.join(dir, 'ethers'))).toBe('00:11:22:33:44:66');
    expect(lookupEthers('nobody', path.join(dir, 'ethers'))).toBeUndefined();
    expect(lookupEthers('x', path.join(dir, 'missing'))).toBeUndefined();
    const text = [
      '[daemon]',
      'log_level = debug',
      '[host:theobromine]',
      'ip = 10.9.0.58',
      'interface = lo',
      'onlyfrom = 10.9.0.2, 10.9.0.3',
      'timeout = 120',
      '[host:nas]',
      'ip: 10.9.0.60',
      'mac: 00-11-22-33-44-77',
      'cooldown: 0',
      'colour = blue',
      'ip6 = FD00:0:0::60, fe80::211:22ff:fe33:4477',
      'proxy = yes',
      'wake_ports = 22 udp/51820 TCP/445 tcp/22',
      'ignore_from = 10.9.0.1 fe80::1, fd00::1/64',
    ].join('\n');
    const { hosts, warnings } = hostsFromConfig(parseIni(text, 'vigil.conf'), 'vigil.conf', env());
    const plainHosts = hosts.map((h) => ({
      ...h,
      onlyFrom: h.onlyFrom.map((r) => r.text),
      ignoreFrom: h.ignoreFrom.map((r) => r.text),
    }));
    expect(plainHosts).toEqual([
      {
        name: 'theobromine',
        mac: '00:11:22:33:44:55',
        ip: '10.9.0.58',
        ip6: [],
        interface: 'lo',
        onlyFrom: ['10.9.0.2', '10.9.0.3'],
        ignoreFrom: [],
        timeout: 120,
        cooldown: 10,
        proxy: false,
        wakePorts: [],
        source: 'config',
      },
      {
        name: 'nas',
        mac: '00:11:22:33:44:77',
        ip: '10.9.0.60',
        ip6: ['fd00::60', 'fe80::211:22ff:fe33:4477'],
        interface: 'lo',
        onlyFrom: [],
        ignoreFrom: ['10.9.0.1', 'fe80::1', 'fd00::/64'],
        timeout: 90,
        cooldown: 0,
        proxy: true,
        wakePorts: [
          { protocol: 'tcp', port: 22 },
          { protocol: 'udp', port: 51820 },
          { protocol: 'tcp', port: 445 },
        ],
        source: 'config',
      },
    ]);
    expect(warnings).toEqual(['vigil.conf:8: [host:nas]: unknown key "colour" ignored']);
  });

  test('an invalid host fails the file with its line', () => {
    const bad = [
      ['[host:x]\nip = 10.9.0.1\nmac = nonsense', /vigil.conf:1: \[host:x\]: invalid MAC/],
      ['[host:x]\nmac = 00:11:22:33:44:55', /"ip" is missing/],
      ['[host:ghost]\nip = 10.9.0.1', /"mac" is missing and "ghost" is not in/],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\ntimeout = soon',
        /timeout must be whole seconds/,
      ],
      ['[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\ntimeout = 0', /timeout must be/],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\ninterface = nosuch0',
        /no network interface/,
      ],
      ['[host:x]\nip = 172.31.0.1\nmac = 00:11:22:33:44:55', /no interface of this machine/],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nonlyfrom = everyone',
        /invalid requester/,
      ],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nip6 = fd00::1::2',
        /\[host:x\]: ip6: invalid IPv6 address "fd00::1::2"/,
      ],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nip6 = ff02::1',
        /ip6: IPv6 address "ff02::1" cannot/,
      ],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nproxy = maybe',
        /proxy must be yes or no/,
      ],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nwake_ports = ssh',
        /wake_ports: invalid port "ssh"/,
      ],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nwake_ports = 0',
        /wake_ports: invalid port "0"/,
      ],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nwake_ports = sctp/9',
        /wake_ports: invalid port "sctp\/9"/,
      ],
      [
        '[host:x]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55\nignore_from = fe80::/129',
        /ignore_from: invalid requester address "fe80::\/129"/,
      ],
      ['[host:a b]\nip = 10.9.0.1\nmac = 00:11:22:33:44:55', /invalid host name/],
      [
        '[host:x]\nip=10.9.0.1\nmac=00:11:22:33:44:55\n[host:x]\nip=10.9.0.2\nmac=00:11:22:33:44:56',
        /defined twice/,
      ],
    ] as const;
    for (const [text, message] of bad) {
      expect(() => hostsFromConfig(parseIni(text), 'vigil.conf', env())).toThrow(message);
    }
  });

  test('AddHost options are validated the same way', () => {
    const spec = makeHostSpec(
      'a',
      '00:11:22:33:44:55',
      '10.9.0.5',
      { onlyFrom: ['10.9.0.1', '10.9.0.0/30'] },
      'bus',
      env(),
    );
    expect(spec.interface).toBe('lo');
    expect(spec.onlyFrom.map((r) => r.text)).toEqual(['10.9.0.1', '10.9.0.0/30']);
    expect(() =>
      makeHostSpec('a', '00:11:22:33:44:55', '10.9.0.5', { cooldown: 1.5 }, 'bus', env()),
    ).toThrow(/cooldown/);
  });
});

describe('store', () => {
  test('hosts added over D-Bus and wake counters survive reopening the database', () => {
    const stateDir = path.join(dir, 'state');
    const spec = makeHostSpec(
      'theobromine',
      '00:11:22:33:44:55',
      '10.9.0.58',
      {
        interface: 'lo',
        onlyFrom: '10.9.0.0/24',
        cooldown: 5,
        ip6: ['fd00::58'],
        proxy: true,
        wakePorts: ['22', 'udp/9'],
        ignoreFrom: ['10.9.0.1', 'fe80::1'],
      },
      'bus',
      env(),
    );
    let db = openStateDatabase(stateDir);
    let store = new WolStore(db);
    store.saveHost(spec);
    store.saveStats('theobromine', {
      state: 'online',
      lastSeen: 1,
      lastWake: 1234,
      wakeCount: 3,
      lastWakeDuration: 4200,
      lastWakeReason: 'tcp/22',
      lastPing: 0,
      learnedIp6: [],
      proxying: false,
      since: 0,
    });
    db.close();
    db = openStateDatabase(stateDir);
    store = new WolStore(db);
    expect(store.loadHosts()).toEqual([
      {
        name: 'theobromine',
        mac: '00:11:22:33:44:55',
        ip: '10.9.0.58',
        interface: 'lo',
        onlyFrom: ['10.9.0.0/24'],
        timeout: 90,
        cooldown: 5,
        ip6: ['fd00::58'],
        proxy: true,
        wakePorts: ['tcp/22', 'udp/9'],
        ignoreFrom: ['10.9.0.1', 'fe80::1'],
      },
    ]);
    // What was stored makes the same host again.
    const [stored] = store.loadHosts();
    const again = makeHostSpec(stored.name, stored.mac, stored.ip, stored, 'bus', env());
    expect(again).toEqual(spec);
    expect(store.loadStats('theobromine')).toEqual({
      lastWake: 1234,
      wakeCount: 3,
      lastWakeDuration: 4200,
      lastWakeReason: 'tcp/22',
    });
    store.saveLearned('theobromine', '00:11:22:33:44:55', [
      { address: 'fe80::1', lastSeen: 5 },
      { address: 'fd00::7', lastSeen: 3 },
    ]);
    expect(store.loadLearned('theobromine', '00:11:22:33:44:55')).toEqual([
      { address: 'fd00::7', lastSeen: 3 },
      { address: 'fe80::1', lastSeen: 5 },
    ]);
    // Learned from another MAC: not this host's.
    expect(store.loadLearned('theobromine', '00:11:22:33:44:56')).toEqual([]);
    const claim = {
      interface: 'eth0',
      address: '10.9.0.58',
      hostName: 'theobromine',
      hostMac: '00:11:22:33:44:55',
    };
    store.saveClaim(claim, 1);
    store.saveClaim({ ...claim, address: 'fe80::1' }, 2);
    db.close();
    db = openStateDatabase(stateDir);
    store = new WolStore(db);
    expect(store.loadClaims()).toEqual([claim, { ...claim, address: 'fe80::1' }]);
    store.deleteClaim(claim);
    expect(store.loadClaims()).toEqual([{ ...claim, address: 'fe80::1' }]);
    store.deleteHost('theobromine');
    expect(store.loadLearned('theobromine', '00:11:22:33:44:55')).toEqual([]);
    expect(store.loadHosts()).toEqual([]);
    expect(store.loadStats('theobromine')).toBeUndefined();
    db.close();
  });
});

describe('packets', () => {
  test('the magic packet is 6×0xff then the MAC 16 times, also as a 0x0842 frame', () => {
    const packet = magicPacket('00:11:22:33:44:55');
    expect(packet.length).toBe(102);
    expect(packet.subarray(0, 6)).toEqual(Buffer.alloc(6, 0xff));
    for (let i = 0; i < 16; i++) {
      expect(packet.subarray(6 + i * 6, 12 + i * 6).toString('hex')).toBe('001122334455');
    }
    const frame = magicEthernetFrame('00:11:22:33:44:55', Buffer.from('020000000001', 'hex'));
    expect(frame.subarray(0, 14).toString('hex')).toBe('ffffffffffff0200000000010842');
    expect(frame.subarray(14)).toEqual(packet);
  });

  test('the capture filter takes ARP, NS/NA, frames from watched MACs and proxied traffic', () => {
    const ndp = '(icmp6 and (ip6[40] == 135 or ip6[40] == 136))';
    expect(captureFilter([])).toBe(`arp or ${ndp}`);
    expect(captureFilter(['00:11:22:33:44:66', '00:11:22:33:44:55', '00:11:22:33:44:66'])).toBe(
      `arp or ${ndp} or ether src 00:11:22:33:44:55 or ether src 00:11:22:33:44:66`,
    );
    expect(captureFilter(['00:11:22:33:44:55'], '02:00:00:00:00:01', ['10.9.0.3', 'fd00::3'])).toBe(
      `arp or ${ndp} or ether src 00:11:22:33:44:55 or ` +
        '(ether dst 02:00:00:00:00:01 and (dst host 10.9.0.3 or dst host fd00::3))',
    );
    // No proxied addresses, or no MAC of ours: nothing to inspect.
    expect(captureFilter([], '02:00:00:00:00:01', [])).toBe(`arp or ${ndp}`);
    expect(captureFilter([], undefined, ['10.9.0.3'])).toBe(`arp or ${ndp}`);
  });

  test('echo replies are recognised by identifier; short or foreign packets are not', () => {
    const reply = Buffer.alloc(28);
    reply[0] = 0x45;
    reply[20] = 0;
    reply.writeUInt16BE(0x1234, 24);
    expect(isEchoReplyFor(reply, 0x1234)).toBe(true);
    expect(isEchoReplyFor(reply, 0x1235)).toBe(false);
    expect(isEchoReplyFor(reply.subarray(0, 27), 0x1234)).toBe(false);
    const request = Buffer.from(reply);
    request[20] = 8;
    expect(isEchoReplyFor(request, 0x1234)).toBe(false);
    const badHeader = Buffer.from(reply);
    badHeader[0] = 0x4f; // 60-byte header in a 28-byte packet
    expect(isEchoReplyFor(badHeader, 0x1234)).toBe(false);
  });

  test('CAP_NET_RAW is read from the effective capability set', () => {
    const status = path.join(dir, 'status');
    fs.writeFileSync(status, 'Name:\tnode\nCapEff:\t0000000000002000\n');
    expect(hasNetRawCapability(status)).toBe(true);
    fs.writeFileSync(status, 'Name:\tnode\nCapEff:\t0000000000000000\n');
    expect(hasNetRawCapability(status)).toBe(false);
    expect(hasNetRawCapability(path.join(dir, 'nonexistent'))).toBe(false);
  });
});

describe('D-Bus options and [wol] settings', () => {
  test('AddHost options: known keys with the right types only', () => {
    expect(
      hostOptions({
        interface: new Variant('s', 'eth0'),
        only_from: new Variant('as', ['10.0.0.1']),
        timeout: new Variant('u', 30),
        cooldown: new Variant('u', 0),
      }),
    ).toEqual({ interface: 'eth0', onlyFrom: ['10.0.0.1'], timeout: 30, cooldown: 0 });
    expect(hostOptions({})).toEqual({
      interface: undefined,
      onlyFrom: undefined,
      timeout: undefined,
      cooldown: undefined,
    });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ colour: new Variant('s', 'blue') }, /unknown option "colour"/],
      [{ interface: new Variant('u', 3) }, /"interface" must be a string/],
      [{ only_from: new Variant('u', 3) }, /"only_from" must be an array of strings/],
      [{ timeout: new Variant('s', '30') }, /"timeout" must be an unsigned integer/],
      [{ cooldown: new Variant('d', 1.5) }, /"cooldown" must be an unsigned integer/],
    ];
    for (const [options, message] of bad) expect(() => hostOptions(options)).toThrow(message);
  });

  test('[wol] interfaces and ethernet_frame', () => {
    expect(
      wolSettings(parseIni('[wol]\ninterfaces = eth0, eth1 br0\nethernet_frame = yes')),
    ).toEqual({
      interfaces: ['eth0', 'eth1', 'br0'],
      ethernetFrame: true,
      wakeHistory: 1000,
    });
    expect(wolSettings(parseIni('[daemon]\nlog_level = info'))).toEqual({
      interfaces: [],
      ethernetFrame: false,
      wakeHistory: 1000,
    });
    expect(wolSettings(parseIni('[wol]\nwake_history = 50')).wakeHistory).toBe(50);
    for (const bad of ['0', 'lots', '-1', '100001']) {
      expect(() => wolSettings(parseIni(`[wol]\nwake_history = ${bad}`))).toThrow(
        /wake_history must be a number of rows/,
      );
    }
    expect(wolSettings(parseIni('[wol]\nethernet_frame = no')).ethernetFrame).toBe(false);
    // A typo is refused like any other bad value, not taken for "no".
    expect(() => wolSettings(parseIni('[wol]\nethernet_frame = yse'))).toThrow(
      /\[wol\] ethernet_frame must be yes or no/,
    );
  });
});
