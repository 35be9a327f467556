import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Message } from '../../src/bus/wire/message';
import { parseIpv4 } from '../../src/wol/addresses';
import { arpFrame } from '../../src/wol/packets';
import { isolatedEnv, runCtl } from '../cli/run';
import { plain, variant } from '../helpers/client';
import { Lan, linkLocal } from '../helpers/netns';
import { isTcpSyn, magicPayload, readPcap, type PcapRecord } from '../helpers/pcap';
import { until } from '../helpers/wait';
import {
  addDualStackNode,
  configText,
  fallAsleep as sleepHost,
  flood,
  frameCounters,
  HOST_IFACE as HOST,
  injectFrames,
  settledCounters,
  startWolScenario,
  unicastFrame,
  useWolScenario,
  WOL_IFACE as WOL,
  WOL_PATH,
} from '../helpers/wol';
import { advertisement, ip6, mac, mldQuery, solicitation } from './craft';

/**
 * The sleep proxy end to end, as issue 8 measured the failure: a requester that already has
 * the sleeping host's MAC cached (so it sends no ARP or NS at all) connects over TCP, over
 * IPv4, over a ULA and over the link-local address. Network namespaces on one learning bridge;
 * the sleeping host keeps its link up but answers nothing (no addresses, `arp off`, IPv6
 * disabled), and the bridge keeps its FDB entry, so the requester's unicast frames reach
 * vigil only once vigil has told the LAN that the host's addresses are at its MAC. tcpdump on
 * vigil's wire is the witness: the SYNs that arrive, the magic packet that leaves, and that
 * nothing else leaves (no RST, no ICMP error, nothing forwarded).
 */

const SLEEPY = '/org/vigil/Vigil1/Hosts/sleepy';
const PLAIN = '/org/vigil/Vigil1/Hosts/plain6';

const MAC = {
  vigil: '02:00:00:00:05:01',
  requester: '02:00:00:00:05:02',
  sleeper: '02:00:00:00:05:03',
  stranger: '02:00:00:00:05:04',
  plain: '02:00:00:00:05:20',
};
const IP = { vigil: '10.9.0.1', requester: '10.9.0.2', sleeper: '10.9.0.3', stranger: '10.9.0.4' };
const ULA = { vigil: 'fd00::1', requester: 'fd00::2', sleeper: 'fd00::3', stranger: 'fd00::4' };
const SLEEPER_LL = linkLocal(MAC.sleeper);

const config = (proxy = 'yes') =>
  configText({
    wol: { interfaces: 'eth0' },
    'host:sleepy': {
      ip: IP.sleeper,
      ip6: ULA.sleeper,
      mac: MAC.sleeper,
      interface: 'eth0',
      proxy,
      wake_ports: 22,
      timeout: 2,
      // Longer than a SYN retransmission (1 s) takes; shorter than a test's sleep cycle.
      cooldown: 4,
    },
    'host:plain6': {
      ip: '10.9.0.20',
      ip6: 'fd00::20',
      mac: MAC.plain,
      interface: 'eth0',
      ignore_from: ULA.stranger,
      timeout: 1,
      cooldown: 0,
    },
  });

describe('sleep proxy with real frames and real TCP', () => {
  const fx = useWolScenario(`vp${process.pid}`, (lan) => {
    for (const name of ['watcher', 'requester', 'stranger'] as const) {
      const key = name === 'watcher' ? 'vigil' : name;
      addDualStackNode(lan, { name, mac: MAC[key], ip: IP[key], ula: ULA[key] });
    }
    addDualStackNode(lan, { name: 'sleeper', mac: MAC.sleeper, ip: IP.sleeper });
    lan.setSysctl('sleeper', 'net.ipv6.conf.eth0.disable_ipv6=1'); // its IPv6 comes up later
    return { name: 'vigil-proxy-e2e-', captureOn: 'watcher', config: config() };
  });
  let listener: ChildProcess | undefined;

  const isWakeSent = (m: Message) => m.member === 'WakeSent';
  const get = async (p: string, prop: string) => fx.client.get(p, HOST, prop);
  const wakes = () => fx.wakeSignals.messages.filter(isWakeSent);

  /** The requester's neighbour entry for `ip`: its MAC (or '' while unresolved). */
  const neighbour = (ip: string): string => fx.lan.neighbour('requester', ip);

  /** A broadcast ARP request from the requester for the host's IPv4 address. */
  const askForHost = (): void =>
    inject('requester', [
      arpFrame({
        op: 'request',
        sourceMac: mac(MAC.requester),
        senderIp: parseIpv4(IP.requester)!,
        targetIp: parseIpv4(IP.sleeper)!,
      }),
    ]);

  /** Send the host one UDP datagram: the requester resolves (and then caches) its MAC. */
  async function touch(ip: string): Promise<void> {
    const target = ip.startsWith('fe80') ? `${ip}%eth0` : ip;
    fx.lan.exec('requester', 'bash', ['-c', `echo hello > /dev/udp/${target}/9`]);
    await until(
      () => neighbour(ip) === MAC.sleeper,
      3000,
      () => `${ip}: ${neighbour(ip)}`,
    );
  }

  /** The sleeper's NIC stays up but answers nothing, as a suspended machine's does. */
  function fallAsleep(): void {
    listener?.kill('SIGKILL');
    listener = undefined;
    sleepHost(fx.lan, 'sleeper');
  }

  /** Addresses back and a listener on port 22, without sending a frame yet. */
  async function wakeUp(): Promise<void> {
    fx.lan.exec('sleeper', 'ip', ['link', 'set', 'eth0', 'arp', 'on']);
    fx.lan.addAddress('sleeper', `${IP.sleeper}/24`);
    listener = fx.lan.spawn('sleeper', process.execPath, [
      '-e',
      "require('net').createServer((s) => s.end('hello\\n')).listen(22, '::', () => console.log('listening'))",
    ]);
    let out = '';
    listener.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('listening'), 10000);
  }

  /** Turn IPv6 back on (the kernel sends DAD, RS and MLD: frames from the host's MAC). */
  function ipv6On(): void {
    fx.lan.setSysctl('sleeper', 'net.ipv6.conf.eth0.disable_ipv6=0');
    fx.lan.addAddress('sleeper', `${ULA.sleeper}/64`);
  }

  /** One frame from the host, unicast to vigil: no other machine hears it. */
  function oneFrame(): void {
    inject('sleeper', [unicastFrame(mac(MAC.vigil), mac(MAC.sleeper))]);
  }

  const inject = (node: string, frames: Buffer[]): void => injectFrames(fx.lan, node, frames);

  /** A TCP connect from the requester, reported as JSON once it connects, fails or times out. */
  function connect(
    host: string,
    port: number,
    timeoutMs: number,
  ): Promise<{ ok: boolean; at: number; error?: string }> {
    const script = `
      const net = require('net');
      const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port} });
      const done = (r) => { console.log(JSON.stringify({ ...r, at: Date.now() })); process.exit(0); };
      setTimeout(() => done({ ok: false, error: 'timeout' }), ${timeoutMs});
      s.on('connect', () => done({ ok: true }));
      s.on('error', (e) => done({ ok: false, error: e.code }));`;
    const child = fx.lan.spawn('requester', process.execPath, ['-e', script]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise((resolve) =>
      child.once('exit', () =>
        resolve(JSON.parse(out || '{"ok":false,"error":"no output","at":0}')),
      ),
    );
  }

  const records = (): PcapRecord[] => readPcap(fx.pcapFile);
  const fromVigil = (r: PcapRecord) => r.data.subarray(6, 12).equals(mac(MAC.vigil));
  const magic = (since: number) =>
    records().filter((r) => r.timeUs >= since * 1000 && magicPayload(r.data)?.mac === MAC.sleeper);

  /** TCP SYNs from the requester to `port` captured on vigil's wire since `since` (ms). */
  const syns = (port: number, since: number): PcapRecord[] =>
    records().filter(
      (r) =>
        r.timeUs >= since * 1000 &&
        r.data.subarray(6, 12).equals(mac(MAC.requester)) &&
        isTcpSyn(r.data, port),
    );

  /**
   * What vigil's namespace sent that a silent proxy must never send: TCP resets, ICMP other
   * than its own echo requests, ICMPv6 errors and redirects, and anything with a source
   * address that is not vigil's own (forwarded traffic).
   */
  function forbiddenFromVigil(): string[] {
    const out: string[] = [];
    for (const r of records().filter(fromVigil)) {
      const d = r.data;
      const type = d.readUInt16BE(12);
      if (type === 0x0800) {
        const ihl = (d[14] & 0x0f) * 4;
        const proto = d[23];
        const src = d.subarray(26, 30).join('.');
        if (src !== IP.vigil) out.push(`IPv4 from ${src}`);
        if (proto === 6 && (d[14 + ihl + 13] & 0x04) !== 0) out.push('TCP RST');
        if (proto === 1 && d[14 + ihl] !== 8) out.push(`ICMP type ${d[14 + ihl]}`);
      } else if (type === 0x86dd) {
        const next = d[20];
        if (next === 6 && (d[54 + 13] & 0x04) !== 0) out.push('TCP RST over IPv6');
        if (next === 58 && (d[54] < 128 || d[54] === 137)) out.push(`ICMPv6 type ${d[54]}`);
        if (next === 6 || next === 17) out.push('IPv6 TCP/UDP from vigil');
      }
    }
    return out;
  }

  test('the host is learned while awake: its link-local address from its own traffic', async () => {
    // The host's link comes up with IPv6 (as after a boot): duplicate address detection, router
    // solicitations and MLD reports, multicast from its link-local address, which vigil learns.
    fx.lan.setSysctl('sleeper', 'net.ipv6.conf.eth0.disable_ipv6=0');
    fx.lan.addAddress('sleeper', `${ULA.sleeper}/64`);
    await until(async () => ((await get(SLEEPY, 'Ip6')) as string[]).includes(SLEEPER_LL), 10000);
    // The requester talks to the host over every address, so it has its MAC cached for each.
    for (const ip of [IP.sleeper, ULA.sleeper, SLEEPER_LL]) await touch(ip);
    expect(await fx.client.getAll(SLEEPY, HOST)).toMatchObject({
      State: 'online',
      Proxy: true,
      Proxying: false,
      WakePorts: ['tcp/22'],
      Ip6: [ULA.sleeper, SLEEPER_LL],
    });
  });

  test('the host sleeps: vigil probes, then answers for each address with its own MAC', async () => {
    fallAsleep();
    await until(
      async () => (await get(SLEEPY, 'Proxying')) === true,
      10000,
      () => fx.daemon.output().slice(-2000),
    );
    expect(fx.daemon.output()).toMatch(/sleepy sleeps; answering for 10\.9\.0\.3, fd00::3, fe80::/);
    // The gratuitous ARP and unsolicited NAs moved the requester's cached entries to vigil.
    await until(
      () => [IP.sleeper, ULA.sleeper, SLEEPER_LL].every((ip) => neighbour(ip) === MAC.vigil),
      3000,
      () => [IP.sleeper, ULA.sleeper, SLEEPER_LL].map(neighbour).join(' '),
    );
    // Announced twice, a second apart, from vigil's MAC about the host's address.
    const garps = records().filter(
      (r) =>
        fromVigil(r) &&
        r.data.readUInt16BE(12) === 0x0806 &&
        r.data.readUInt32BE(28) === parseIpv4(IP.sleeper)! &&
        r.data.readUInt32BE(38) === parseIpv4(IP.sleeper)! &&
        r.data.subarray(22, 28).equals(mac(MAC.vigil)),
    );
    await until(
      () =>
        garps.length >= 2 ||
        records().filter((r) => fromVigil(r) && r.data.readUInt16BE(12) === 0x0806).length > 0,
      3000,
    );
  });

  async function wakeByTcp(target: string, label: string): Promise<void> {
    const before = wakes().length;
    // Port 445 is not in wake_ports: inspected, never answered, nothing woken.
    const started445 = Date.now();
    const refused = await connect(target, 445, 2500);
    expect(refused).toMatchObject({ ok: false, error: 'timeout' });
    expect(syns(445, started445).length).toBeGreaterThanOrEqual(1);
    expect(wakes().length).toBe(before);
    expect(magic(started445)).toHaveLength(0);

    // Port 22: the first SYN wakes the host, once.
    const started = Date.now();
    const connection = connect(target, 22, 20000);
    const signal = await fx.wakeSignals.waitFor(
      (m) => isWakeSent(m) && wakes().indexOf(m) >= before,
    );
    expect(signal.body).toEqual(['sleepy', MAC.sleeper, expect.any(String), 'tcp/22']);
    await until(() => magic(started).length >= 1, 2000);
    const firstSyn = syns(22, started)[0];
    const packet = magic(started)[0];
    expect(packet.timeUs - firstSyn.timeUs).toBeGreaterThan(0);
    expect(packet.timeUs - firstSyn.timeUs).toBeLessThan(1_000_000);
    expect(await get(SLEEPY, 'LastWakeReason')).toBe('tcp/22');
    expect(await get(SLEEPY, 'State')).toBe('waking');

    // The host wakes: addresses back, a listener, one frame to vigil. vigil hands back at once.
    await wakeUp();
    ipv6On();
    oneFrame();
    const t0 = Date.now();
    await until(
      () => neighbour(target.replace(/%.*/, '')) === MAC.sleeper,
      1000,
      () => `${label}: requester still has ${neighbour(target.replace(/%.*/, ''))} after 1 s`,
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    const result = await connection;
    expect(result).toMatchObject({ ok: true });
    expect(magic(started)).toHaveLength(1); // the SYN retransmissions fell in the cooldown
    expect(await get(SLEEPY, 'Proxying')).toBe(false);
    expect(forbiddenFromVigil()).toEqual([]);
  }

  test('IPv4: port 445 wakes nothing; port 22 wakes it, hands back, and the connection completes', async () => {
    await wakeByTcp(IP.sleeper, 'IPv4');
    expect(fx.daemon.output()).toMatch(
      /sleepy is awake; handed 10\.9\.0\.3, fd00::3, fe80::\S+ back/,
    );
    const [history] = (await fx.client.call(WOL_PATH, WOL, 'GetWakeHistory', 'u', [10])) as Record<
      string,
      { value: unknown }
    >[][];
    const rows = history.map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.value])),
    );
    expect(rows[0]).toMatchObject({
      Host: 'sleepy',
      Trigger: 'tcp/22',
      Outcome: 'woke',
      RequesterIp: IP.requester,
      RequesterMac: MAC.requester,
    });
    expect(Number(rows[0].AliveAfter)).toBeGreaterThan(0);
    expect(rows.find((r) => r.Trigger === 'tcp/445')).toMatchObject({
      Outcome: 'port-not-listed',
      RequesterIp: IP.requester,
    });
  }, 60000);

  async function sleepAgain(): Promise<void> {
    await until(async () => (await get(SLEEPY, 'State')) === 'online', 5000);
    for (const ip of [IP.sleeper, ULA.sleeper, SLEEPER_LL]) await touch(ip);
    fallAsleep();
    await until(async () => (await get(SLEEPY, 'Proxying')) === true, 10000);
    await until(() => [ULA.sleeper, SLEEPER_LL].every((ip) => neighbour(ip) === MAC.vigil), 3000);
  }

  test('IPv6 (ULA): the same, over Neighbor Discovery', async () => {
    await sleepAgain();
    await wakeByTcp(ULA.sleeper, 'ULA');
  }, 60000);

  test('IPv6 (link-local): the same', async () => {
    await sleepAgain();
    await wakeByTcp(`${SLEEPER_LL}%eth0`, 'link-local');
  }, 60000);

  test('without proxy, an NS wakes an offline host; a DAD probe, its own NS and ignore_from do not', async () => {
    await until(async () => (await get(PLAIN, 'State')) === 'offline', 5000);
    const before = wakes().length;
    const ns = (sourceMac: string, source: string) =>
      solicitation({ sourceMac: mac(sourceMac), source, target: 'fd00::20' });
    inject('requester', [ns(MAC.requester, '::')]); // DAD probe
    inject('stranger', [ns(MAC.stranger, ULA.stranger)]); // in ignore_from
    inject('requester', [ns(MAC.plain, 'fd00::20')]); // the host's own (it is awake, then)
    await until(async () => (await get(PLAIN, 'State')) === 'online', 3000);
    await until(async () => (await get(PLAIN, 'State')) === 'offline', 5000);
    expect(wakes().length).toBe(before);
    inject('requester', [ns(MAC.requester, ULA.requester)]);
    const signal = await fx.wakeSignals.waitFor(
      (m) => isWakeSent(m) && wakes().indexOf(m) >= before,
    );
    expect(signal.body).toEqual(['plain6', MAC.plain, ULA.requester, 'ndp']);
    expect(await get(PLAIN, 'LastWakeReason')).toBe('ndp');
    expect(wakes().length).toBe(before + 1);
    const [rows] = await fx.client.call(WOL_PATH, WOL, 'GetWakeHistory', 'u', [0]);
    const plainRows = (plain(rows) as Record<string, unknown>[]).filter((r) => r.Host === 'plain6');
    expect(plainRows.map((r) => [r.Trigger, r.Outcome, r.RequesterIp])).toEqual([
      ['ndp', 'woke', ULA.requester],
      ['ndp', 'ignored', ULA.stranger],
    ]);
  });

  test('the new options and properties over D-Bus and vigilctl, bad values included', async () => {
    const add = (name: string, options: Record<string, unknown>, ip = '10.9.0.30') =>
      fx.client.call(WOL_PATH, WOL, 'AddHost', 'sssa{sv}', [
        name,
        '02:00:00:00:05:30',
        ip,
        options,
      ]);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ip6: variant('as', ['fd00::30::1']) }, /ip6: invalid IPv6 address "fd00::30::1"/],
      [{ ip6: variant('as', ['ff02::1']) }, /ip6: IPv6 address "ff02::1" cannot belong/],
      [{ ip6: variant('u', 3) }, /option "ip6" must be an array of strings/],
      [{ ip6: variant('as', [ULA.sleeper]) }, /fd00::3 on eth0 is already watched as "sleepy"/],
      [{ proxy: variant('s', 'yes') }, /option "proxy" must be a boolean/],
      [{ wake_ports: variant('as', ['ssh']) }, /wake_ports: invalid port "ssh"/],
      [{ wake_ports: variant('as', ['tcp/70000']) }, /wake_ports: invalid port "tcp\/70000"/],
      [{ ignore_from: variant('as', ['10.9.0.300']) }, /ignore_from: invalid requester address/],
      [{ ignore_from: variant('as', ['fe80::/200']) }, /ignore_from: invalid requester address/],
      [
        {
          ip6: variant(
            'as',
            Array.from({ length: 17 }, (_, i) => `fd00::7:${i}`),
          ),
        },
        /ip6: at most 16/,
      ],
    ];
    for (const [options, message] of bad) {
      const err = await fx.client.callError(WOL_PATH, WOL, 'AddHost', 'sssa{sv}', [
        'nas',
        '02:00:00:00:05:30',
        '10.9.0.30',
        options,
      ]);
      expect([err.type, err.text]).toEqual([
        'org.vigil.Vigil1.Error.InvalidArgument',
        expect.stringMatching(message),
      ]);
    }
    const [nasPath] = await add('nas', {
      ip6: variant('as', ['FD00::30']),
      proxy: variant('b', true),
      wake_ports: variant('as', ['22', 'udp/9', 'tcp/22']),
      ignore_from: variant('s', '10.9.0.254, fe80::1'),
    });
    expect(await fx.client.getAll(nasPath as string, HOST)).toMatchObject({
      Ip6: ['fd00::30'],
      Proxy: true,
      Proxying: false,
      WakePorts: ['tcp/22', 'udp/9'],
      IgnoreFrom: ['10.9.0.254', 'fe80::1'],
      LastWakeReason: '',
    });
    const readOnly = await fx.client.callError(
      nasPath as string,
      'org.freedesktop.DBus.Properties',
      'Set',
      'ssv',
      [HOST, 'Proxy', variant('b', false)],
    );
    expect(readOnly.type).toMatch(/Error/);
    expect(await get(nasPath as string, 'Proxy')).toBe(true);
    await fx.client.call(WOL_PATH, WOL, 'RemoveHost', 's', ['nas']);

    const env = isolatedEnv();
    const ctl = (...args: string[]) => runCtl(['--bus', fx.bus.address, ...args], env);
    const added = await ctl(
      'hosts',
      'add',
      'nas2',
      '02:00:00:00:05:31',
      '10.9.0.31',
      '--proxy',
      '--ip6',
      'fd00::31,fe80::31',
      '--wake-ports',
      '22,udp/51820',
      '--ignore-from',
      '10.9.0.254',
    );
    expect(added).toMatchObject({ code: 0, stdout: '/org/vigil/Vigil1/Hosts/nas2\n' });
    const list = await ctl('hosts');
    const line = (name: string) => list.stdout.split('\n').find((l) => l.startsWith(name)) ?? '';
    expect(line('nas2')).toMatch(
      /^nas2\s+02:00:00:00:05:31\s+10\.9\.0\.31,fd00::31,fe80::31\s+eth0\s+unknown\s+on\s/,
    );
    expect(line('sleepy')).toMatch(/\s(on|proxying)\s.*\stcp\/22\s/);
    expect(line('plain6')).toMatch(/\soff\s.*\sndp\s/);
    const json = JSON.parse((await ctl('--json', 'hosts')).stdout) as {
      hosts: Record<string, unknown>[];
    };
    expect(json.hosts.find((h) => h.Name === 'nas2')).toMatchObject({
      Proxy: true,
      WakePorts: ['tcp/22', 'udp/51820'],
      IgnoreFrom: ['10.9.0.254'],
    });
    const badPort = await ctl(
      'hosts',
      'add',
      'nas3',
      '02:00:00:00:05:32',
      '10.9.0.32',
      '--wake-ports',
      'ssh',
    );
    expect(badPort.code).toBe(1);
    expect(badPort.stderr).toMatch(/InvalidArgument: wake_ports: invalid port "ssh"/);
    expect(
      (await ctl('hosts', 'add', 'nas3', '02:00:00:00:05:32', '10.9.0.32', '--ip6', 'fd00::32,'))
        .code,
    ).toBe(2);
    expect((await ctl('hosts', 'remove', 'nas2')).code).toBe(0);

    const wakesOut = await ctl('wakes', '--limit', '3');
    expect(wakesOut.code).toBe(0);
    const lines = wakesOut.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^TIME\s+HOST\s+TRIGGER\s+REQUESTER\s+REQUESTER MAC\s+OUTCOME\s+AWAKE AFTER$/,
    );
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/plain6\s+ndp\s+fd00::2\s+02:00:00:00:05:02\s+woke/);
    const sleepyOnly = JSON.parse(
      (await ctl('--json', 'wakes', '--host', 'sleepy')).stdout,
    ) as Record<string, unknown>[];
    expect(sleepyOnly.length).toBeGreaterThanOrEqual(6); // three wakes, three port-not-listed
    expect(new Set(sleepyOnly.map((r) => r.Host))).toEqual(new Set(['sleepy']));
    expect(sleepyOnly.filter((r) => r.Outcome === 'woke').map((r) => r.Trigger)).toEqual([
      'tcp/22',
      'tcp/22',
      'tcp/22',
    ]);
    expect((await ctl('wakes', '--limit', 'many')).code).toBe(2);
    const tooMany = await fx.client.callError(WOL_PATH, WOL, 'GetWakeHistory', 'u', [20000]);
    expect(tooMany.type).toBe('org.vigil.Vigil1.Error.InvalidArgument');
  }, 60000);

  const counters = () => frameCounters(fx.client);

  test('a flood of 100,000 random and malformed IPv6, ICMPv6 and ARP frames at a proxying daemon', async () => {
    await sleepAgain();
    const before = await counters();
    const wakesBefore = wakes().length;
    let answered = 0;
    const { code, report } = await flood(
      fx.lan,
      'stranger',
      ['flood6', '100000', String(process.pid), '100', MAC.vigil, IP.sleeper, ULA.sleeper],
      async () => {
        expect(await fx.client.get(SLEEPY, HOST, 'Proxying')).toBe(true);
        answered++;
      },
    );
    expect(code).toBe(0);
    expect(answered).toBeGreaterThan(0);
    const now = await settledCounters(fx.client);
    const malformed = now.malformed - before.malformed;
    expect(malformed).toBeLessThanOrEqual(report!.malformed);
    expect(malformed).toBeGreaterThan(report!.malformed / 10);
    expect(now.seen - before.seen).toBeGreaterThanOrEqual(malformed);
    expect(wakes().length).toBe(wakesBefore); // SYNs and datagrams to unlisted ports only
    expect(await get(SLEEPY, 'Proxying')).toBe(true);
    expect(fx.daemon.child.exitCode).toBeNull();
    // It still answers for the host.
    askForHost();
    await until(
      () =>
        records().some(
          (r) =>
            fromVigil(r) &&
            r.data.readUInt16BE(12) === 0x0806 &&
            r.data.readUInt16BE(20) === 2 &&
            r.data.subarray(0, 6).equals(mac(MAC.requester)),
        ),
      3000,
    );
  }, 60000);

  test('a third machine claiming a proxied address: vigil stops answering for it and logs the conflict', async () => {
    expect(await get(SLEEPY, 'Proxying')).toBe(true);
    // The stranger takes the ULA for itself (as a DHCPv6 server might hand it out anew).
    fx.lan.addAddress('stranger', `${ULA.sleeper}/64`);
    inject('stranger', [advertisement({ sourceMac: mac(MAC.stranger), target: ULA.sleeper })]);
    await until(
      () => /address conflict: 02:00:00:00:05:04 advertises fd00::3/.test(fx.daemon.output()),
      3000,
    );
    const mark = Date.now();
    inject('requester', [
      solicitation({ sourceMac: mac(MAC.requester), source: ULA.requester, target: ULA.sleeper }),
    ]);
    await new Promise((r) => setTimeout(r, 500));
    // The answer to that NS comes from the stranger now; vigil sends none.
    const answers = records().filter(
      (r) =>
        r.timeUs >= mark * 1000 &&
        fromVigil(r) &&
        r.data.readUInt16BE(12) === 0x86dd &&
        r.data[54] === 136,
    );
    expect(answers).toEqual([]);
    expect(await get(SLEEPY, 'Proxying')).toBe(true); // the other addresses still are
    fx.lan.exec('stranger', 'ip', ['-6', 'addr', 'del', `${ULA.sleeper}/64`, 'dev', 'eth0']);
  });

  test('with IP forwarding on, vigil does not take IPv4 addresses over (the kernel would route them)', async () => {
    oneFrame(); // the host is back for a moment, then sleeps with forwarding on at vigil
    await until(async () => (await get(SLEEPY, 'State')) === 'online', 3000);
    fx.lan.setSysctl('watcher', 'net.ipv4.ip_forward=1');
    try {
      await until(async () => (await get(SLEEPY, 'Proxying')) === true, 10000);
      expect(fx.daemon.output()).toMatch(
        /sleep proxy for sleepy: not answering for 10\.9\.0\.3 \(IPv4 forwarding is on for eth0/,
      );
      askForHost();
      await new Promise((r) => setTimeout(r, 300));
      expect(neighbour(IP.sleeper)).not.toBe(MAC.vigil);
      expect(forbiddenFromVigil()).toEqual([]);
    } finally {
      fx.lan.setSysctl('watcher', 'net.ipv4.ip_forward=0');
    }
    oneFrame();
    await until(async () => (await get(SLEEPY, 'State')) === 'online', 3000);
  });

  test('SIGKILL while proxying: the next start hands the addresses back; SIGTERM hands back before exit', async () => {
    await sleepAgain();
    expect(neighbour(IP.sleeper)).toBe(MAC.vigil);
    fx.daemon.child.kill('SIGKILL');
    await fx.daemon.stop();
    expect(neighbour(IP.sleeper)).toBe(MAC.vigil); // nobody told the LAN
    await fx.restart();
    await until(
      () => neighbour(IP.sleeper) === MAC.sleeper && neighbour(ULA.sleeper) === MAC.sleeper,
      3000,
      () => `${neighbour(IP.sleeper)} ${neighbour(ULA.sleeper)}\n${fx.daemon.output()}`,
    );
    expect(fx.daemon.output()).toMatch(
      /handed 10\.9\.0\.3 back to sleepy \(02:00:00:00:05:03\), taken over before vigil last stopped/,
    );
    // The link-local address it learned while awake came back from the state database.
    expect(await get(SLEEPY, 'Ip6')).toEqual([ULA.sleeper, SLEEPER_LL]);
    // The host still sleeps, so the new daemon takes over again; then a clean stop.
    await until(async () => (await get(SLEEPY, 'Proxying')) === true, 10000);
    await until(() => neighbour(IP.sleeper) === MAC.vigil, 3000);
    const stopping = Date.now();
    await fx.daemon.stop();
    expect(Date.now() - stopping).toBeLessThan(5000);
    expect(neighbour(IP.sleeper)).toBe(MAC.sleeper);
    expect(neighbour(ULA.sleeper)).toBe(MAC.sleeper);
    await fx.restart();
    expect(fx.daemon.output()).not.toMatch(/taken over before vigil last stopped/);
  }, 60000);

  test('a reload that turns proxy off hands back; turning it on again takes over', async () => {
    const reload = async (text: string) => {
      fs.writeFileSync(fx.configFile, text);
      await fx.client.call('/org/vigil/Vigil1', 'org.vigil.Vigil1.Daemon', 'Reload');
    };
    await until(async () => (await get(SLEEPY, 'Proxying')) === true, 10000);
    await until(() => neighbour(IP.sleeper) === MAC.vigil, 3000);
    const changes = await fx.client.subscribe({ path: SLEEPY, member: 'PropertiesChanged' });
    await reload(config('no'));
    await until(() => neighbour(IP.sleeper) === MAC.sleeper, 2000);
    expect(await fx.client.getAll(SLEEPY, HOST)).toMatchObject({ Proxy: false, Proxying: false });
    const changed = changes.messages.map((m) => Object.keys(plain(m.body[1]) as object)).flat();
    expect(changed).toEqual(expect.arrayContaining(['Proxy', 'Proxying']));
    await reload(config());
    await until(async () => (await get(SLEEPY, 'Proxying')) === true, 10000);
    await until(() => neighbour(IP.sleeper) === MAC.vigil, 3000);
  }, 30000);
});

describe('a switch that snoops MLD', () => {
  test('vigil joins the solicited-node groups of the watched addresses, so their NS reach it', async () => {
    const lan = new Lan(`vm${process.pid}`, { mldSnooping: true });
    const nodes: [string, string, string[]][] = [
      ['watcher', MAC.vigil, [`${ULA.vigil}/64`]],
      ['requester', MAC.requester, [`${ULA.requester}/64`]],
      // Its addresses share their last 24 bits, so their solicited-node groups, with the
      // host's and with an unwatched address: the switch learns those groups at its port.
      ['twin', MAC.stranger, ['fd01::20/64', 'fd01::21/64']],
    ];
    for (const [name, m, cidr6] of nodes) lan.addNode({ name, mac: m, ipv6: true, cidr6 });
    lan.addNode({ name: 'router', mac: '02:00:00:00:05:99' });
    const scenario = await startWolScenario({
      lan,
      name: 'vigil-mld-',
      captureOn: 'watcher',
      config: `[host:plain6]\nip = 10.9.0.20\nip6 = fd00::20\nmac = ${MAC.plain}\ninterface = eth0\ntimeout = 1\ncooldown = 0\n`,
    });
    const { client, pcapFile } = scenario;
    try {
      const signals = scenario.wakeSignals;
      await until(async () => (await client.get(PLAIN, HOST, 'State')) === 'offline', 5000);
      // A querier appears; from now on the switch forwards each group to its members only.
      injectFrames(lan, 'router', [mldQuery(mac('02:00:00:00:05:99'), 'fe80::99')]);
      const members = (group: string): string =>
        execFileSync('bridge', ['-n', lan.switchNetns, 'mdb', 'show'], { encoding: 'utf8' })
          .split('\n')
          .filter((l) => l.includes(`grp ${group} `))
          .map((l) => /port (\S+)/.exec(l)?.[1])
          .sort()
          .join(' ');
      // p0 is vigil's port, p2 the twin's.
      await until(
        () => members('ff02::1:ff00:20') === 'p0 p2' && members('ff02::1:ff00:21') === 'p2',
        5000,
        () =>
          `ff02::1:ff00:20: ${members('ff02::1:ff00:20')}; ff02::1:ff00:21: ${members('ff02::1:ff00:21')}`,
      );
      const ns = (target: string) =>
        solicitation({ sourceMac: mac(MAC.requester), source: ULA.requester, target });
      const mark = Date.now() * 1000;
      injectFrames(lan, 'requester', [ns('fd00::21'), ns('fd00::20')]);
      const signal = await signals.waitFor((m) => m.member === 'WakeSent');
      expect(signal.body).toEqual(['plain6', MAC.plain, ULA.requester, 'ndp']);
      // The solicitation for the group vigil did not join never reached its wire.
      const seen = readPcap(pcapFile)
        .filter((r) => r.timeUs >= mark && r.data.readUInt16BE(12) === 0x86dd && r.data[54] === 135)
        .map((r) => r.data.subarray(62, 78).toString('hex'));
      expect(seen).toEqual([ip6('fd00::20').toString('hex')]);
    } finally {
      await scenario.stop();
    }
  }, 60000);
});
