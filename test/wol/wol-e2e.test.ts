import type { Message } from '../../src/bus/wire/message';
import { parseIpv4, parseMac } from '../../src/wol/addresses';
import { arpFrame } from '../../src/wol/packets';
import { CtlProcess, isolatedEnv, runCtl } from '../cli/run';
import { plain, variant, type SignalLog } from '../helpers/client';
import { Lan } from '../helpers/netns';
import { magicPayload, readPcap } from '../helpers/pcap';
import { until } from '../helpers/wait';
import {
  configText,
  flood,
  frameCounters,
  HOST_IFACE as HOST,
  injectFrames,
  INJECT,
  settledCounters,
  startWolScenario,
  useWolScenario,
  WOL_IFACE as WOL,
  WOL_PATH,
} from '../helpers/wol';

/**
 * The Wake-on-LAN watcher end to end with real packets: a LAN of network namespaces behind a
 * learning bridge, the daemon (with its real captures, sender and pinger) inside the watcher
 * namespace, a private dbus-daemon, and tcpdump on the sleeping host's wire as the witness.
 */

const SLEEPY_PATH = '/org/vigil/Vigil1/Hosts/sleepy';

const MAC = {
  watcher: '02:00:00:00:01:01',
  requester: '02:00:00:00:01:02',
  sleeper: '02:00:00:00:01:03',
  stranger: '02:00:00:00:01:04',
};
const SLEEPER_IP = '10.9.0.3';

/** Make the kernel of `node` send IP traffic to `ip`: it ARPs first (the real trigger). */
function sendTraffic(lan: Lan, node: string, ip: string): void {
  lan.flushNeighbours(node);
  lan.exec(node, 'bash', ['-c', `echo wake-up > /dev/udp/${ip}/7`]);
}

const ip4 = (s: string) => parseIpv4(s)!;
const mac = (s: string) => parseMac(s)!;

describe('Wake-on-LAN watcher with real packets', () => {
  const fx = useWolScenario(`vw${process.pid}`, (lan) => {
    lan.addNode({ name: 'watcher', mac: MAC.watcher, cidr: '10.9.0.1/24' });
    lan.addNode({ name: 'requester', mac: MAC.requester, cidr: '10.9.0.2/24' });
    lan.addNode({ name: 'sleeper', mac: MAC.sleeper }); // asleep: no address, answers nothing
    lan.addNode({ name: 'stranger', mac: MAC.stranger, cidr: '10.9.0.4/24' });
    return {
      name: 'vigil-wol-e2e-',
      captureOn: 'sleeper',
      config: configText({
        wol: { ethernet_frame: 'yes' },
        'host:sleepy': {
          ip: SLEEPER_IP,
          mac: MAC.sleeper,
          interface: 'eth0',
          onlyfrom: '10.9.0.2',
          timeout: 3,
          cooldown: 8,
        },
      }),
    };
  });
  let hostSignals: SignalLog;

  const magicPackets = () =>
    readPcap(fx.pcapFile)
      .map((r) => ({ ...r, magic: magicPayload(r.data) }))
      .filter((r) => r.magic !== undefined);
  const wakesSent = async () => Number(await fx.client.get(WOL_PATH, WOL, 'WakesSent'));
  const hostState = async () => String(await fx.client.get(SLEEPY_PATH, HOST, 'State'));
  const isWakeSent = (m: Message) => m.member === 'WakeSent';

  beforeAll(async () => {
    hostSignals = await fx.client.subscribe({ path: SLEEPY_PATH, member: 'PropertiesChanged' });
  });

  test('the watcher is available, watches eth0 and exports the configured host', async () => {
    expect(await fx.client.get(WOL_PATH, WOL, 'Available')).toBe(true);
    expect(await fx.client.get(WOL_PATH, WOL, 'Interfaces')).toEqual(['eth0']);
    const [hosts] = await fx.client.call(WOL_PATH, WOL, 'ListHosts');
    expect(hosts).toEqual([SLEEPY_PATH]);
    const props = await fx.client.getAll(SLEEPY_PATH, HOST);
    expect(props).toMatchObject({
      Name: 'sleepy',
      Mac: MAC.sleeper,
      Ip: SLEEPER_IP,
      Interface: 'eth0',
      OnlyFrom: ['10.9.0.2'],
      Timeout: 3,
      Cooldown: 8,
    });
    // Never seen: unknown, then offline once its timeout has passed.
    await until(async () => (await hostState()) === 'offline', 10000);
  });

  test('an ARP request from an allowed requester wakes the sleeping host exactly once', async () => {
    const before = await wakesSent();
    sendTraffic(fx.lan, 'requester', SLEEPER_IP);
    const signal = await fx.wakeSignals.waitFor(isWakeSent);
    expect(signal.body).toEqual(['sleepy', MAC.sleeper, '10.9.0.2', 'arp']);
    // The requester's kernel keeps asking (3 tries, 1 s apart), and we ask once more by hand:
    // all inside the 8 s cooldown, so nothing more is sent.
    await new Promise((r) => setTimeout(r, 2500));
    sendTraffic(fx.lan, 'requester', SLEEPER_IP);
    await new Promise((r) => setTimeout(r, 500));
    expect(await wakesSent()).toBe(before + 1);
    expect(fx.wakeSignals.count(isWakeSent)).toBe(1);

    const records = readPcap(fx.pcapFile);
    const requests = records.filter(
      (r) =>
        r.data.readUInt16BE(12) === 0x0806 &&
        r.data.readUInt16BE(20) === 1 &&
        r.data.subarray(6, 12).equals(mac(MAC.requester)) &&
        r.data.readUInt32BE(38) === ip4(SLEEPER_IP),
    );
    expect(requests.length).toBeGreaterThanOrEqual(3);
    const magic = magicPackets();
    expect(magic.filter((m) => m.magic!.via === 'udp')).toHaveLength(1);
    expect(magic.filter((m) => m.magic!.via === 'ethernet')).toHaveLength(1);
    for (const m of magic) expect(m.magic!.mac).toBe(MAC.sleeper);
    const udp = magic.find((m) => m.magic!.via === 'udp')!.data;
    expect(udp.subarray(0, 6)).toEqual(Buffer.alloc(6, 0xff)); // Ethernet broadcast
    expect(udp.subarray(30, 34)).toEqual(Buffer.from([10, 9, 0, 255])); // subnet broadcast
    expect(udp.readUInt16BE(36)).toBe(9); // discard port
    // The magic packet follows the first request on the wire.
    expect(magic[0].timeUs).toBeGreaterThanOrEqual(requests[0].timeUs);

    await until(async () => (await fx.client.get(SLEEPY_PATH, HOST, 'WakeCount')) === 1);
    expect(Number(await fx.client.get(SLEEPY_PATH, HOST, 'LastWake'))).toBeGreaterThan(0);
    const states = hostSignals.messages
      .map((m) => plain(m.body[1]) as Record<string, unknown>)
      .filter((p) => p.State !== undefined)
      .map((p) => p.State);
    expect(states).toContain('waking');
  });

  test('strangers, gratuitous ARP, probes and replies wake nothing; the next allowed request does', async () => {
    // Let the cooldown run out first, so only the rules below can stop a wake.
    const lastWake = Number(await fx.client.get(SLEEPY_PATH, HOST, 'LastWake')) / 1000;
    await until(() => Date.now() > lastWake + 8200, 12000);
    const before = await wakesSent();
    const signalsBefore = fx.wakeSignals.count(isWakeSent);

    sendTraffic(fx.lan, 'stranger', SLEEPER_IP); // not in OnlyFrom
    const requester = mac(MAC.requester);
    injectFrames(fx.lan, 'requester', [
      // gratuitous: sender IP = target IP
      arpFrame({
        op: 'request',
        sourceMac: requester,
        senderIp: ip4(SLEEPER_IP),
        targetIp: ip4(SLEEPER_IP),
      }),
      // probe: sender IP 0.0.0.0
      arpFrame({ op: 'request', sourceMac: requester, senderIp: 0, targetIp: ip4(SLEEPER_IP) }),
      // a reply about the host
      arpFrame({
        op: 'reply',
        sourceMac: requester,
        senderIp: ip4('10.9.0.2'),
        targetIp: ip4(SLEEPER_IP),
      }),
      // truncated request
      arpFrame({
        op: 'request',
        sourceMac: requester,
        senderIp: ip4('10.9.0.2'),
        targetIp: ip4(SLEEPER_IP),
      }).subarray(0, 40),
      // and finally a well-formed request from the allowed requester
      arpFrame({
        op: 'request',
        sourceMac: requester,
        senderIp: ip4('10.9.0.2'),
        targetIp: ip4(SLEEPER_IP),
      }),
    ]);
    // Our crafted gratuitous ARP taught the watcher's kernel a false MAC for the sleeper (as any
    // gratuitous ARP updates an existing neighbour entry); forget it so its pings go out right.
    fx.lan.flushNeighbours('watcher');
    // Frames are handled in wire order, so the one wake must be the last frame's.
    const signal = await fx.wakeSignals.waitFor(
      (m) => isWakeSent(m) && fx.wakeSignals.messages.indexOf(m) >= signalsBefore,
    );
    expect(signal.body).toEqual(['sleepy', MAC.sleeper, '10.9.0.2', 'arp']);
    await new Promise((r) => setTimeout(r, 300));
    expect(await wakesSent()).toBe(before + 1);
    expect(magicPackets().filter((m) => m.magic!.via === 'udp')).toHaveLength(2);
    expect(Number(await fx.client.get(WOL_PATH, WOL, 'FramesMalformed'))).toBeGreaterThanOrEqual(1);
  });

  test('the woken host answering moves it waking → online with the wake time recorded', async () => {
    expect(await hostState()).toBe('waking');
    const wokeAt = Number(await fx.client.get(SLEEPY_PATH, HOST, 'LastWake'));
    fx.lan.addAddress('sleeper', `${SLEEPER_IP}/24`); // it "wakes up" and answers ARP from now on
    await until(async () => (await hostState()) === 'online', 5000);
    const duration = Number(await fx.client.get(SLEEPY_PATH, HOST, 'LastWakeDuration'));
    expect(duration).toBeGreaterThan(0);
    expect(duration).toBeLessThan(5_000_000);
    const lastSeen = Number(await fx.client.get(SLEEPY_PATH, HOST, 'LastSeen'));
    expect(lastSeen).toBeGreaterThanOrEqual(wokeAt);
    expect(
      hostSignals.messages.some((m) => (plain(m.body[1]) as { State?: string }).State === 'online'),
    ).toBe(true);
    expect(fx.daemon.output()).toMatch(/Waking sleepy \(02:00:00:00:01:03\) for 10\.9\.0\.2/);
    expect(fx.daemon.output()).toMatch(/sleepy \(10\.9\.0\.3\) is online, was waking/);
  });

  test('a host that falls silent goes offline after its timeout', async () => {
    fx.lan.exec('sleeper', 'ip', ['addr', 'flush', 'dev', 'eth0']); // back to sleep
    await until(async () => (await hostState()) === 'offline', 8000);
    expect(fx.daemon.output()).toMatch(
      /sleepy \(10\.9\.0\.3\) is offline, was online: silent for 3 s/,
    );
  });

  test('hosts added over D-Bus are validated, woken by hand, removed, and persist', async () => {
    const add = (name: string, m: string, ip: string, options: Record<string, unknown> = {}) =>
      fx.client.call(WOL_PATH, WOL, 'AddHost', 'sssa{sv}', [name, m, ip, options]);
    const bad: [string, string, string, Record<string, unknown>][] = [
      ['nas', 'not-a-mac', '10.9.0.20', {}],
      ['nas', 'ff:ff:ff:ff:ff:ff', '10.9.0.20', {}],
      ['nas', '02:00:00:00:02:01', '10.9.0.300', {}],
      ['bad name', '02:00:00:00:02:01', '10.9.0.20', {}],
      ['nas', '02:00:00:00:02:01', '10.9.0.20', { interface: variant('s', 'nosuch0') }],
      ['nas', '02:00:00:00:02:01', '10.9.0.20', { interface: variant('s', '../x') }],
      ['nas', '02:00:00:00:02:01', '10.9.0.20', { timeout: variant('u', 0) }],
      ['nas', '02:00:00:00:02:01', '10.9.0.20', { colour: variant('s', 'blue') }],
      ['nas', '02:00:00:00:02:01', '10.9.0.20', { only_from: variant('as', ['everyone']) }],
      ['sleepy', '02:00:00:00:02:01', '10.9.0.20', {}],
      ['nas', MAC.sleeper, '10.9.0.20', {}],
      ['nas', '02:00:00:00:02:01', SLEEPER_IP, {}],
    ];
    for (const [name, m, ip, options] of bad) {
      const err = await fx.client
        .call(WOL_PATH, WOL, 'AddHost', 'sssa{sv}', [name, m, ip, options])
        .then(
          () => ({ type: 'none' }),
          (e: { type: string }) => e,
        );
      expect([name, m, ip, err.type]).toEqual([
        name,
        m,
        ip,
        'org.vigil.Vigil1.Error.InvalidArgument',
      ]);
    }
    const [nasPath] = await add('nas-1', '02-00-00-00-02-01', '10.9.0.20', {
      only_from: variant('as', ['10.9.0.0/24']),
      timeout: variant('u', 60),
      cooldown: variant('u', 0),
    });
    expect(nasPath).toBe('/org/vigil/Vigil1/Hosts/nas_2d1');
    expect(await fx.client.getAll(nasPath as string, HOST)).toMatchObject({
      Name: 'nas-1',
      Mac: '02:00:00:00:02:01',
      Interface: 'eth0', // found from the subnet of its address
      OnlyFrom: ['10.9.0.0/24'],
      Timeout: 60,
      Cooldown: 0,
      State: 'unknown',
    });

    const signalsBefore = fx.wakeSignals.count(isWakeSent);
    await fx.client.call(nasPath as string, HOST, 'Wake');
    await fx.client.call(WOL_PATH, WOL, 'Wake', 's', ['02:00:00:00:09:09']); // nobody's MAC
    await until(() => fx.wakeSignals.count(isWakeSent) >= signalsBefore + 2);
    const bodies = fx.wakeSignals.messages
      .filter(isWakeSent)
      .slice(signalsBefore)
      .map((m) => m.body);
    expect(bodies).toEqual([
      ['nas-1', '02:00:00:00:02:01', '', 'manual'],
      ['', '02:00:00:00:09:09', '', 'manual'],
    ]);
    await until(() => magicPackets().some((m) => m.magic!.mac === '02:00:00:00:09:09'));
    const notFound = await fx.client.callError(WOL_PATH, WOL, 'Wake', 's', ['nobody']);
    expect(notFound.type).toBe('org.vigil.Vigil1.Error.NotFound');
    const invalid = await fx.client.callError(WOL_PATH, WOL, 'Wake', 's', ['no body!']);
    expect(invalid.type).toBe('org.vigil.Vigil1.Error.InvalidArgument');
    const readOnly = await fx.client.callError(
      nasPath as string,
      'org.freedesktop.DBus.Properties',
      'Set',
      'ssv',
      [HOST, 'Timeout', variant('u', 5)],
    );
    expect(readOnly.type).toMatch(/Error/);
    expect(await fx.client.get(nasPath as string, HOST, 'Timeout')).toBe(60);
    const configHost = await fx.client.callError(WOL_PATH, WOL, 'RemoveHost', 's', ['sleepy']);
    expect(configHost.type).toBe('org.vigil.Vigil1.Error.NotSupported');
    const missing = await fx.client.callError(WOL_PATH, WOL, 'RemoveHost', 's', ['nobody']);
    expect(missing.type).toBe('org.vigil.Vigil1.Error.NotFound');
    await add('gone', '02:00:00:00:02:02', '10.9.0.21');
    await fx.client.call(WOL_PATH, WOL, 'RemoveHost', 's', ['gone']);

    // Restart: the D-Bus host comes back with its wake count; the removed one does not.
    await fx.restart();
    const [hosts] = await fx.client.call(WOL_PATH, WOL, 'ListHosts');
    expect((hosts as string[]).sort()).toEqual(['/org/vigil/Vigil1/Hosts/nas_2d1', SLEEPY_PATH]);
    expect(await fx.client.get(nasPath as string, HOST, 'WakeCount')).toBe(1);
    expect(await fx.client.get(nasPath as string, HOST, 'OnlyFrom')).toEqual(['10.9.0.0/24']);
    expect(await fx.client.get(SLEEPY_PATH, HOST, 'WakeCount')).toBe(2);
  });

  test('vigilctl hosts, hosts add, hosts remove, wake and watch', async () => {
    const env = isolatedEnv();
    const ctl = (...args: string[]) => runCtl(['--bus', fx.bus.address, ...args], env);
    const watch = new CtlProcess(['--bus', fx.bus.address, 'watch'], env);
    try {
      await watch.until((p) => p.stdout.includes('/Hosts/sleepy'), 'watch listing the hosts');

      const added = await ctl(
        'hosts',
        'add',
        'printer',
        '02:00:00:00:03:01',
        '10.9.0.30',
        '--only-from',
        '10.9.0.2,10.9.0.4',
        '--timeout',
        '30',
        '--cooldown',
        '2',
      );
      expect(added).toMatchObject({ code: 0, stdout: '/org/vigil/Vigil1/Hosts/printer\n' });
      await watch.until(
        (p) => p.stdout.includes('+ /org/vigil/Vigil1/Hosts/printer'),
        'host added',
      );

      const list = await ctl('hosts');
      expect(list.code).toBe(0);
      const printerLine = list.stdout.split('\n').find((l) => l.startsWith('printer'));
      expect(printerLine).toMatch(/printer\s+02:00:00:00:03:01\s+10\.9\.0\.30\s+eth0\s+unknown/);
      expect(printerLine).toMatch(/10\.9\.0\.2,10\.9\.0\.4$/);
      const json = await ctl('--json', 'hosts');
      const parsed = JSON.parse(json.stdout) as { Available: boolean; hosts: { Name: string }[] };
      expect(parsed.Available).toBe(true);
      expect(parsed.hosts.map((h) => h.Name)).toEqual(
        expect.arrayContaining(['printer', 'sleepy']),
      );

      const woke = await ctl('wake', 'printer');
      if (woke.code !== 0) console.log(woke.stderr, fx.daemon.output().slice(-3000));
      expect(woke).toMatchObject({ code: 0, stdout: 'magic packet sent to printer\n' });
      await watch.until((p) => /WakeSent.*printer/.test(p.stdout), 'WakeSent in watch');
      await watch.until(
        (p) => /Hosts\/printer.*State=waking/.test(p.stdout),
        'state change in watch',
      );

      // Bad input: usage errors (exit 2) and vigil's errors (exit 1), one line each.
      expect((await ctl('hosts', 'add', 'x', '02:00:00:00:03:02')).code).toBe(2);
      expect(
        (await ctl('hosts', 'add', 'x', '02:00:00:00:03:02', '10.9.0.31', '--timeout', 'soon'))
          .code,
      ).toBe(2);
      const badMac = await ctl('hosts', 'add', 'x', 'zz', '10.9.0.31');
      expect(badMac.code).toBe(1);
      expect(badMac.stderr).toMatch(/InvalidArgument: invalid MAC address "zz"/);
      const unknown = await ctl('wake', 'nobody');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/NotFound/);

      expect((await ctl('hosts', 'remove', 'printer')).code).toBe(0);
      await watch.until(
        (p) => p.stdout.includes('- /org/vigil/Vigil1/Hosts/printer'),
        'host removed',
      );
      expect((await ctl('hosts', 'remove', 'printer')).code).toBe(1);
    } finally {
      await watch.kill();
    }
  });

  const counters = () => frameCounters(fx.client);
  const quick = async (bits: number) =>
    String(
      (
        await fx.client.call(
          '/org/vigil/Vigil1/RandomData',
          'org.vigil.Vigil1.RandomData',
          'quick',
          'i',
          [bits],
        )
      )[0],
    );

  test('hostile frames at a pace the capture keeps up with are each counted', async () => {
    const before = await counters();
    const wakesBefore = await wakesSent();
    // 3,000 frames at 1 per millisecond: slow enough that the kernel's capture ring never drops
    // even on a busy 2-core machine (faster floods are the next test's business).
    const report = JSON.parse(
      fx.lan.exec('stranger', process.execPath, [INJECT, 'eth0', 'flood', '3000', '11', '1']),
    ) as { sent: number; malformed: number };
    let now = before;
    await until(
      async () => {
        now = await counters();
        return now.malformed - before.malformed >= report.malformed;
      },
      10000,
      () => `${now.malformed - before.malformed} of ${report.malformed} malformed frames counted`,
    );
    await new Promise((r) => setTimeout(r, 200));
    now = await counters();
    expect(now.malformed - before.malformed).toBe(report.malformed);
    expect(now.seen - before.seen).toBeGreaterThanOrEqual(report.sent);
    expect(await wakesSent()).toBe(wakesBefore);
  });

  test('a flood of 100,000 malformed and random frames leaves it alive, counting and answering', async () => {
    const before = await counters();
    const wakesBefore = await wakesSent();
    // As fast as the injector goes (100 per ms asked): the capture ring may drop some, which the
    // kernel does before we see them; what arrives must be counted and nothing may wake.
    // D-Bus calls during the flood are answered.
    let answeredDuringFlood = 0;
    const { code, report } = await flood(
      fx.lan,
      'stranger',
      ['flood', '100000', String(process.pid), '100'],
      async () => {
        expect(await quick(32)).toMatch(/^\d+$/);
        answeredDuringFlood++;
      },
    );
    expect(code).toBe(0);
    expect(report!.sent).toBe(100000);
    expect(answeredDuringFlood).toBeGreaterThan(0);
    // Let the daemon drain its capture ring, then read the counters once they stop moving.
    const now = await settledCounters(fx.client);
    const malformed = now.malformed - before.malformed;
    const seen = now.seen - before.seen;
    expect(malformed).toBeLessThanOrEqual(report!.malformed);
    // How many the kernel ring drops depends on the machine; a healthy daemon sees far more than this.
    expect(malformed).toBeGreaterThan(report!.malformed / 10);
    expect(seen).toBeGreaterThanOrEqual(malformed);
    expect(seen).toBeLessThanOrEqual(report!.sent + 100); // plus the odd ping
    expect(await wakesSent()).toBe(wakesBefore);
    expect(await quick(64)).toMatch(/^\d+$/);
    expect(await fx.client.get(WOL_PATH, WOL, 'Available')).toBe(true);
    expect(fx.daemon.child.exitCode).toBeNull();
  }, 60000);
});

describe('Wake-on-LAN watcher without CAP_NET_RAW', () => {
  test('reports itself unavailable, logs why, and the rest of the daemon works', async () => {
    const lan = new Lan(`vu${process.pid}`);
    lan.addNode({ name: 'watcher', mac: MAC.watcher, cidr: '10.9.0.1/24' });
    const scenario = await startWolScenario({
      lan,
      name: 'vigil-wol-nocap-',
      config: `[host:sleepy]\nip = ${SLEEPER_IP}\nmac = ${MAC.sleeper}\nproxy = yes\ntimeout = 1\n`,
      wrap: ['setpriv', '--bounding-set=-net_raw'],
    });
    const { client, daemon } = scenario;
    try {
      expect(await client.get(WOL_PATH, WOL, 'Available')).toBe(false);
      expect(daemon.output()).toMatch(
        /Wake-on-LAN watcher unavailable: capturing ARP needs CAP_NET_RAW/,
      );
      expect(daemon.output()).toMatch(
        /Wake-on-LAN sleep proxy unavailable: answering for sleepy needs CAP_NET_RAW/,
      );
      await until(async () => (await client.get(SLEEPY_PATH, HOST, 'State')) === 'offline', 5000);
      expect(await client.get(SLEEPY_PATH, HOST, 'Proxying')).toBe(false);
      // Hosts can still be listed and added, and a wake by hand still goes out over UDP.
      expect((await client.call(WOL_PATH, WOL, 'ListHosts'))[0]).toEqual([SLEEPY_PATH]);
      await client.call(WOL_PATH, WOL, 'Wake', 's', ['sleepy']);
      expect(Number(await client.get(WOL_PATH, WOL, 'WakesSent'))).toBe(1);
      const [digits] = await client.call(
        '/org/vigil/Vigil1/RandomData',
        'org.vigil.Vigil1.RandomData',
        'quick',
        'i',
        [8],
      );
      expect(String(digits)).toMatch(/^\d+$/);
    } finally {
      await scenario.stop();
    }
  }, 60000);
});
