/**
 * The sleep proxy and the IPv6 wake rules as a state machine: crafted frames and a hand-driven
 * clock in, decisions and the frames vigil would send out. No socket, nothing on any wire.
 */
import { parseAddressList, parseIpv4, parseIpv6 } from '../../src/wol/addresses';
import { parseFrame, type ArpFrame, type NdpFrame } from '../../src/wol/frames';
import { arpFrame } from '../../src/wol/packets';
import {
  ANSWERS_PER_SECOND,
  DAD_GRACE_MS,
  PROBE_MS,
  type InterfaceState,
  type ProxyClaim,
} from '../../src/wol/proxy';
import {
  MAX_LEARNED_IP6,
  WolWatcher,
  type HostSpec,
  type WakeDecision,
  type WakeRecord,
} from '../../src/wol/watcher';
import { advertisement, fixIcmp6Checksum, ipFrame, mac, solicitation } from './craft';
import { generator, hostileFrame6 } from './hostile';

const VIGIL = '02:00:00:00:00:01';
const SLEEPER = '02:00:00:00:00:03';
const REQUESTER = '02:00:00:00:00:02';
const STRANGER = '02:00:00:00:00:04';
const V4 = '10.9.0.3';
const V6 = 'fd00::3';
const LL = 'fe80::3';
const ip4 = (s: string) => parseIpv4(s)!;

function spec(overrides: Partial<HostSpec> = {}): HostSpec {
  return {
    name: 'sleepy',
    mac: SLEEPER,
    ip: V4,
    ip6: [V6],
    interface: 'eth0',
    onlyFrom: [],
    ignoreFrom: [],
    timeout: 10,
    cooldown: 5,
    proxy: true,
    wakePorts: [{ protocol: 'tcp', port: 22 }],
    source: 'config',
    ...overrides,
  };
}

const INTERFACE: InterfaceState & { ipv4: number[] } = {
  mac: VIGIL,
  ipv4: [ip4('10.9.0.1')],
  ipv6: [
    { bytes: parseIpv6('fe80::1')!, prefix: 64 },
    { bytes: parseIpv6('fd00::1')!, prefix: 64 },
  ],
  ipv4Forwarding: false,
  ipv6Forwarding: false,
  ipv6Disabled: false,
};

function setup(overrides: Partial<HostSpec> = {}, iface: Partial<typeof INTERFACE> = {}) {
  let clock = 1_000_000;
  const wakes: WakeDecision[] = [];
  const records: WakeRecord[] = [];
  const sent: Buffer[] = [];
  const claims = new Map<string, ProxyClaim>();
  const logs: string[] = [];
  const learned: string[][] = [];
  const proxying: boolean[] = [];
  const watcher = new WolWatcher(
    {
      wake: (d) => wakes.push(d),
      stateChanged: () => undefined,
      seen: () => undefined,
      decided: (r) => records.push(r),
      learned: (h) => learned.push([...h.status.learnedIp6]),
      proxy: {
        send: (_iface, frame) => sent.push(Buffer.from(frame)),
        claimed: (c) => claims.set(c.address, c),
        released: (c) => claims.delete(c.address),
        proxyingChanged: (h) => proxying.push(h.status.proxying),
        log: (level, message) => logs.push(`${level}: ${message}`),
      },
    },
    () => clock,
  );
  watcher.setInterface('eth0', { ...INTERFACE, ...iface });
  const host = watcher.addHost(spec(overrides));
  const t = {
    watcher,
    host,
    wakes,
    records,
    sent,
    claims,
    logs,
    learned,
    proxying,
    advance: (ms: number) => {
      clock += ms;
      return watcher.tick();
    },
    frame: (buf: Buffer) => watcher.handleFrame('eth0', buf),
    /** What was sent since the last call, parsed. */
    drain: () => sent.splice(0).map((b) => ({ raw: b, frame: parseFrame(b) })),
  };
  return t;
}

type T = ReturnType<typeof setup>;

/** Offline, probed, taken over: the state every proxy test starts from. */
function proxied(t: T): void {
  t.advance(11_000); // unknown → offline after the 10 s timeout; probing starts
  expect(t.host.status.state).toBe('offline');
  t.advance(PROBE_MS);
  expect(t.host.status.proxying).toBe(true);
}

const arpRequest = (sender: string, senderMac = REQUESTER, target = V4): Buffer =>
  arpFrame({
    op: 'request',
    sourceMac: mac(senderMac),
    senderIp: ip4(sender),
    targetIp: ip4(target),
  });

const syn = (port: number, source = '10.9.0.2', protocol: 'tcp' | 'udp' = 'tcp', flags = 0x02) =>
  ipFrame({
    sourceMac: mac(REQUESTER),
    destinationMac: mac(VIGIL),
    source,
    destination: source.includes(':') ? V6 : V4,
    protocol,
    destinationPort: port,
    flags,
  });

describe('IPv6 wake, every host', () => {
  const plain = { proxy: false, ip6: ['fd00::20'], ip: '10.9.0.20', mac: '02:00:00:00:00:20' };
  const ns = (source: string, sourceMac = REQUESTER, target = 'fd00::20') =>
    solicitation({ sourceMac: mac(sourceMac), source, target });

  test('an NS for an offline host wakes it like ARP; a DAD probe or its own NS does not', () => {
    const t = setup(plain);
    t.advance(11_000);
    expect(t.frame(ns('::'))).toMatchObject({ kind: 'ignored', reason: 'probe' });
    expect(t.frame(ns('fd00::20', '02:00:00:00:00:20', 'fd00::20'))).toMatchObject({
      kind: 'ignored',
      reason: 'self',
    });
    expect(t.wakes).toHaveLength(0);
    t.advance(11_000); // its own NS proved it awake; silent again
    expect(t.frame(ns('fd00::2'))).toMatchObject({ kind: 'wake' });
    expect(t.wakes[0]).toMatchObject({
      reason: 'ndp',
      requesterIp: 'fd00::2',
      requesterMac: REQUESTER,
    });
    expect(t.host.status.lastWakeReason).toBe('ndp');
    expect(t.frame(ns('fd00::2'))).toMatchObject({ kind: 'ignored', reason: 'cooldown' });
    expect(t.records.map((r) => [r.trigger, r.outcome])).toEqual([
      ['ndp', 'woke'],
      ['ndp', 'cooldown'],
    ]);
  });

  test('ignore_from and only_from apply to IPv6 sources; our own ping’s NS does not wake', () => {
    const t = setup({
      ...plain,
      ignoreFrom: parseAddressList('fd00::4, 10.9.0.254'),
      onlyFrom: parseAddressList('fd00::/64'),
      cooldown: 0,
    });
    t.advance(11_000);
    expect(t.frame(ns('fd00::4', STRANGER))).toMatchObject({ reason: 'ignore-from' });
    expect(t.frame(ns('fd01::9'))).toMatchObject({ reason: 'not-allowed' });
    // Pinged at the last tick: the kernel's NS from our own address is ours, not a requester's.
    t.watcher.tick();
    expect(t.frame(ns('fd00::1', VIGIL))).toMatchObject({ reason: 'own-probe' });
    expect(t.frame(ns('fd00::9')).kind).toBe('wake');
    expect(t.records.map((r) => r.outcome)).toEqual(['ignored', 'not-allowed', 'woke']);
  });

  test('malformed or truncated NS/NA are counted and never wake', () => {
    const t = setup({ ...plain, cooldown: 0 });
    t.advance(11_000);
    const good = ns('fd00::2');
    const bad: Buffer[] = [];
    const edit = (f: (b: Buffer) => void, fix = false) => {
      const b = Buffer.from(good);
      f(b);
      bad.push(fix ? fixIcmp6Checksum(b) : b);
    };
    edit((b) => (b[21] = 64)); // hop limit
    edit((b) => (b[57] ^= 1)); // checksum
    edit((b) => (b[55] = 1), true); // code
    edit((b) => (b[79] = 0), true); // option length 0
    edit((b) => (b[79] = 9), true); // option longer than the packet
    edit((b) => (b[14] = 0x40)); // version 4 in an IPv6 frame
    edit((b) => b.writeUInt16BE(200, 18)); // payload beyond the frame
    for (let n = 14; n < good.length; n++) bad.push(good.subarray(0, n)); // every truncation
    bad.push(solicitation({ sourceMac: mac(REQUESTER), source: 'fd00::2', target: 'ff02::1' }));
    const dadWithAddress = Buffer.from(ns('fd00::2'));
    dadWithAddress.fill(0, 22, 38); // source :: but a link-layer option
    bad.push(fixIcmp6Checksum(dadWithAddress));
    for (const frame of bad)
      expect([frame.toString('hex'), t.frame(frame).kind]).toEqual([
        frame.toString('hex'),
        'malformed',
      ]);
    expect(t.watcher.framesMalformed).toBe(bad.length);
    expect(t.wakes).toHaveLength(0);
    expect(t.frame(good).kind).toBe('wake');
  });
});

describe('learning a host’s IPv6 addresses from its own traffic', () => {
  test('link-local sources, NS sources, DAD targets and NA targets; never routed sources', () => {
    const t = setup({ proxy: false });
    const from = mac(SLEEPER);
    t.frame(solicitation({ sourceMac: from, source: '::', target: 'fd00::33' })); // DAD
    t.frame(solicitation({ sourceMac: from, source: 'fd00::34', target: 'fd00::2' }));
    t.frame(advertisement({ sourceMac: from, target: 'fd00::35' }));
    t.frame(
      ipFrame({
        sourceMac: from,
        destinationMac: mac(VIGIL),
        source: LL,
        destination: 'fe80::1',
        protocol: 'udp',
        destinationPort: 5353,
      }),
    );
    // A routed packet: its source may be any machine behind the host.
    t.frame(
      ipFrame({
        sourceMac: from,
        destinationMac: mac(VIGIL),
        source: '2001:db8::77',
        destination: 'fd00::1',
        protocol: 'tcp',
        destinationPort: 80,
      }),
    );
    // Someone else's advertisement of an address is not the host's.
    t.frame(advertisement({ sourceMac: mac(STRANGER), target: 'fd00::44' }));
    expect(t.host.status.learnedIp6).toEqual(['fd00::33', 'fd00::34', 'fd00::35', LL]);
    expect(t.watcher.addresses(t.host).map((a) => a.text)).toEqual([
      V4,
      V6,
      'fd00::33',
      'fd00::34',
      'fd00::35',
      LL,
    ]);
    expect(t.learned).toHaveLength(4);
  });

  test('at most MAX_LEARNED_IP6, the longest unseen forgotten; an address another host owns is not learned', () => {
    const t = setup({ proxy: false });
    t.watcher.addHost(
      spec({
        name: 'other',
        mac: '02:00:00:00:00:09',
        ip: '10.9.0.9',
        ip6: ['fd00::99'],
        proxy: false,
      }),
    );
    const from = mac(SLEEPER);
    for (let i = 0; i < MAX_LEARNED_IP6 + 2; i++) {
      t.advance(1);
      t.frame(advertisement({ sourceMac: from, target: `fd00::1:${i}` }));
    }
    t.frame(advertisement({ sourceMac: from, target: 'fd00::99' }));
    expect(t.host.status.learnedIp6).toHaveLength(MAX_LEARNED_IP6);
    expect(t.host.status.learnedIp6).not.toContain('fd00::1:0');
    expect(t.host.status.learnedIp6).not.toContain('fd00::99');
    // A learned address wakes like a configured one.
    const n = solicitation({ sourceMac: mac(REQUESTER), source: 'fd00::2', target: 'fd00::1:9' });
    t.advance(11_000);
    expect(t.watcher.handleFrame('eth0', n).kind).toBe('wake');
  });
});

describe('sleep proxy: take-over', () => {
  test('offline: an echo, an ARP probe and an NS per address, then both announced twice', () => {
    const t = setup();
    t.advance(0);
    t.drain();
    const pinged = t.advance(11_000);
    expect(pinged.map((h) => h.spec.name)).toEqual(['sleepy']);
    const probes = t.drain();
    const arp = probes.find((p) => p.frame.kind === 'arp')!.frame as ArpFrame;
    expect(arp).toMatchObject({ op: 'request', senderIp: 0, targetIp: ip4(V4), senderMac: VIGIL });
    const ns = probes.filter((p) => p.frame.kind === 'ndp').map((p) => p.frame as NdpFrame);
    expect(ns.map((n) => [n.type, n.sourceIp.toString('hex'), n.target.toString('hex')])).toEqual([
      ['ns', parseIpv6('fe80::1')!.toString('hex'), parseIpv6(V6)!.toString('hex')],
    ]);
    expect(t.claims.size).toBe(0);
    t.advance(PROBE_MS - 500);
    expect(t.drain()).toHaveLength(2); // the second probe round
    t.advance(500);
    expect([...t.claims.keys()]).toEqual([V4, V6]);
    expect(t.proxying).toEqual([true]);
    const announced = t.drain();
    expect(announced).toHaveLength(2);
    const garp = announced[0];
    expect(garp.raw.subarray(0, 12).toString('hex')).toBe('ffffffffffff' + '020000000001');
    expect(garp.frame).toMatchObject({
      kind: 'arp',
      op: 'request',
      senderMac: VIGIL,
      senderIp: ip4(V4),
      targetIp: ip4(V4),
    });
    expect(announced[1].frame).toMatchObject({
      kind: 'ndp',
      type: 'na',
      linkAddress: VIGIL,
      override: true,
      solicited: false,
    });
    expect(announced[1].raw.subarray(0, 6).toString('hex')).toBe('333300000001');
    t.advance(999);
    expect(t.drain()).toHaveLength(0);
    t.advance(1);
    expect(t.drain()).toHaveLength(2); // a second apart
    t.advance(5000);
    expect(t.drain()).toHaveLength(0);
  });

  test('an address that answers the probe is not taken; when none is left the host is held', () => {
    const t = setup();
    t.advance(11_000);
    t.frame(
      arpFrame({
        op: 'reply',
        sourceMac: mac(STRANGER),
        senderIp: ip4(V4),
        targetIp: 0,
        destinationMac: mac(VIGIL),
      }),
    );
    t.advance(PROBE_MS);
    expect([...t.claims.keys()]).toEqual([V6]);
    expect(t.logs.join('\n')).toMatch(
      /not answering for 10\.9\.0\.3 \(sleepy\): 02:00:00:00:00:04 answers for it/,
    );
    // An ARP request for the address someone else holds is theirs to answer, and wakes nothing.
    expect(t.frame(arpRequest('10.9.0.2'))).toMatchObject({ kind: 'ignored', reason: 'proxied' });

    const u = setup({ ip6: [] });
    u.advance(11_000);
    u.frame(arpFrame({ op: 'reply', sourceMac: mac(STRANGER), senderIp: ip4(V4), targetIp: 0 }));
    u.advance(PROBE_MS);
    expect(u.claims.size).toBe(0);
    expect(u.logs.join('\n')).toMatch(/another machine answers for each of its addresses/);
    u.advance(10_000);
    expect(u.claims.size).toBe(0); // held until the host is seen
  });

  test('a host that answers the probe itself is awake: nothing is taken over', () => {
    const t = setup();
    t.advance(11_000);
    t.frame(arpFrame({ op: 'reply', sourceMac: mac(SLEEPER), senderIp: ip4(V4), targetIp: 0 }));
    expect(t.host.status.state).toBe('online');
    t.advance(PROBE_MS);
    expect(t.claims.size).toBe(0);
    expect(t.host.status.proxying).toBe(false);
  });

  test('forwarding on, an off-link prefix: those addresses are not taken over, and it is logged once', () => {
    const t = setup({}, { ipv4Forwarding: true });
    t.advance(11_000);
    t.advance(PROBE_MS);
    expect([...t.claims.keys()]).toEqual([V6]);
    const u = setup({ ip6: ['fd77::3'] }, { ipv4Forwarding: true });
    u.advance(11_000);
    u.advance(PROBE_MS);
    u.advance(PROBE_MS);
    expect(u.claims.size).toBe(0);
    const warnings = u.logs.filter((l) => l.startsWith('warning'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /IPv4 forwarding is on for eth0.*fd77::3 \(not on a prefix of eth0/,
    );
    // ARP wakes it as if it had no proxy: nothing answers for it.
    expect(u.frame(arpRequest('10.9.0.2')).kind).toBe('wake');
    // IPv6 forwarding blocks IPv6 only; IPv6 off on our side makes every IPv6 address safe.
    const v = setup({ ip6: ['fd77::3'] }, { ipv6Forwarding: true });
    v.advance(11_000);
    v.advance(PROBE_MS);
    expect([...v.claims.keys()]).toEqual([V4]);
    const w = setup({ ip6: ['fd77::3'] }, { ipv6Disabled: true, ipv6: [] });
    w.advance(11_000);
    expect(w.drain().filter((p) => p.frame.kind === 'ndp')).toHaveLength(0); // no NS from ::
    w.advance(PROBE_MS);
    expect([...w.claims.keys()]).toEqual([V4, 'fd77::3']);
  });
});

describe('sleep proxy: answering', () => {
  test('ARP and NS for a proxied address are answered with our MAC, never woken on', () => {
    const t = setup();
    proxied(t);
    t.drain();
    expect(t.frame(arpRequest('10.9.0.2'))).toMatchObject({ kind: 'answered' });
    const [reply] = t.drain();
    expect(reply.raw.subarray(0, 6).toString('hex')).toBe('020000000002');
    expect(reply.frame).toMatchObject({
      kind: 'arp',
      op: 'reply',
      senderMac: VIGIL,
      senderIp: ip4(V4),
      targetIp: ip4('10.9.0.2'),
    });
    const ns = solicitation({ sourceMac: mac(REQUESTER), source: 'fd00::2', target: V6 });
    expect(t.frame(ns)).toMatchObject({ kind: 'answered' });
    const [na] = t.drain();
    expect(na.frame).toMatchObject({
      kind: 'ndp',
      type: 'na',
      linkAddress: VIGIL,
      solicited: true,
      override: true,
    });
    expect((na.frame as NdpFrame).destinationIp.toString('hex')).toBe(
      parseIpv6('fd00::2')!.toString('hex'),
    );
    // A DAD probe for it is defended (to all nodes, unsolicited), as the host would.
    t.advance(200);
    t.frame(solicitation({ sourceMac: mac(STRANGER), source: '::', target: V6 }));
    const [defence] = t.drain();
    expect(defence.frame).toMatchObject({ kind: 'ndp', type: 'na', solicited: false });
    expect(defence.raw.subarray(0, 6).toString('hex')).toBe('333300000001');
    // Our own kernel asking (a ping of the host) is not answered: it would cache our MAC.
    expect(t.frame(arpRequest('10.9.0.1', VIGIL))).toMatchObject({ kind: 'ignored' });
    expect(t.drain()).toHaveLength(0);
    expect(t.wakes).toHaveLength(0);
  });

  test('answers are rate-limited per requester and per interface', () => {
    const t = setup();
    proxied(t);
    t.drain();
    for (let i = 0; i < 10; i++) t.frame(arpRequest('10.9.0.2'));
    expect(t.drain()).toHaveLength(1);
    for (let i = 0; i < ANSWERS_PER_SECOND * 2; i++) {
      t.frame(
        arpRequest(
          `10.9.1.${i % 250}`,
          `02:00:00:00:01:${(i % 250).toString(16).padStart(2, '0')}`,
        ),
      );
    }
    expect(t.drain().length).toBeLessThanOrEqual(ANSWERS_PER_SECOND);
    t.advance(1000);
    t.drain(); // the take-over's second announcement
    t.frame(arpRequest('10.9.0.2'));
    expect(t.drain()).toHaveLength(1);
    // What the limits remember is forgotten once it limits nothing (long after any queue ran dry).
    t.advance(10_000);
    for (let i = 0; i < 50; i++) {
      t.advance(20);
      t.frame(arpRequest(`10.9.2.${i}`, `02:00:00:00:02:${i.toString(16).padStart(2, '0')}`));
    }
    t.advance(500);
    t.advance(500);
    expect(t.watcher.proxy.trackedEntries).toBe(0);
  });

  test('TCP SYN and UDP to a proxied address: wake_ports, ignore_from, only_from, cooldown', () => {
    const t = setup({
      wakePorts: [
        { protocol: 'tcp', port: 22 },
        { protocol: 'udp', port: 51820 },
      ],
      ignoreFrom: parseAddressList('10.9.0.254'),
      onlyFrom: parseAddressList('10.9.0.0/24, fd00::/64'),
    });
    proxied(t);
    expect(t.frame(syn(445))).toMatchObject({ kind: 'ignored', reason: 'port-not-listed' });
    expect(t.frame(syn(22, '10.9.0.2', 'tcp', 0x10))).toMatchObject({ reason: 'not-a-wake' }); // an ACK
    expect(t.frame(syn(51820, '10.9.0.2', 'tcp'))).toMatchObject({ reason: 'port-not-listed' });
    expect(t.frame(syn(22, '10.9.0.254'))).toMatchObject({ reason: 'ignore-from' });
    expect(t.frame(syn(22, '10.8.0.2'))).toMatchObject({ reason: 'not-allowed' });
    expect(t.wakes).toHaveLength(0);
    expect(t.frame(syn(22)).kind).toBe('wake');
    expect(t.wakes[0]).toMatchObject({
      reason: 'tcp/22',
      requesterIp: '10.9.0.2',
      requesterMac: REQUESTER,
    });
    expect(t.frame(syn(22))).toMatchObject({ reason: 'cooldown' });
    t.advance(5000);
    expect(t.frame(syn(51820, 'fd00::2', 'udp')).kind).toBe('wake');
    expect(t.wakes[1].reason).toBe('udp/51820');
    expect(t.records.map((r) => `${r.trigger} ${r.outcome}`)).toEqual([
      'tcp/445 port-not-listed',
      'tcp/51820 port-not-listed',
      'tcp/22 ignored',
      'tcp/22 not-allowed',
      'tcp/22 woke',
      'tcp/22 cooldown',
      'udp/51820 woke',
    ]);
    // ARP for the host while it wakes is still answered, not woken on.
    expect(t.frame(arpRequest('10.9.0.2')).kind).toBe('answered');
  });

  test('empty wake_ports: any SYN or UDP datagram wakes; traffic to an address not taken is not ours', () => {
    const t = setup({ wakePorts: [] });
    proxied(t);
    expect(t.frame(syn(8080)).kind).toBe('wake');
    const other = ipFrame({
      sourceMac: mac(REQUESTER),
      destinationMac: mac(VIGIL),
      source: '10.9.0.2',
      destination: '10.9.0.77',
      protocol: 'tcp',
      destinationPort: 22,
    });
    expect(t.frame(other).kind).toBe('none');
  });
});

describe('sleep proxy: conflicts and hand-back', () => {
  test('another MAC claiming a proxied address ends the proxy for it at once', () => {
    const t = setup();
    proxied(t);
    t.frame(
      arpFrame({ op: 'request', sourceMac: mac(STRANGER), senderIp: ip4(V4), targetIp: ip4(V4) }),
    );
    expect([...t.claims.keys()]).toEqual([V6]);
    expect(t.logs.join('\n')).toMatch(
      /address conflict: 02:00:00:00:00:04 announces 10\.9\.0\.3, which vigil answers for sleepy/,
    );
    t.drain();
    expect(t.frame(arpRequest('10.9.0.2'))).toMatchObject({ kind: 'ignored', reason: 'proxied' });
    expect(t.drain()).toHaveLength(0);
    expect(t.host.status.proxying).toBe(true);
    t.frame(advertisement({ sourceMac: mac(STRANGER), target: V6 }));
    expect(t.claims.size).toBe(0);
    expect(t.host.status.proxying).toBe(false);
    expect(t.proxying).toEqual([true, false]);
  });

  test('the host seen: announced with its MAC, every requester told directly, IPv6 after its DAD', () => {
    const t = setup();
    proxied(t);
    t.frame(arpRequest('10.9.0.2'));
    t.frame(solicitation({ sourceMac: mac(REQUESTER), source: 'fd00::2', target: V6 }));
    t.frame(syn(445, 'fd00::7')); // traffic alone makes its sender someone to tell
    t.drain();
    // The host wakes: its first frame is a DAD probe for its address.
    t.frame(solicitation({ sourceMac: mac(SLEEPER), source: '::', target: V6 }));
    expect(t.host.status.proxying).toBe(false);
    expect(t.claims.size).toBe(0);
    const now = t.drain();
    const garp = now.find((p) => p.frame.kind === 'arp' && (p.frame as ArpFrame).op === 'request')!;
    expect(garp.raw.subarray(6, 12).toString('hex')).toBe('020000000001'); // from our MAC
    expect(garp.frame).toMatchObject({ senderMac: SLEEPER, senderIp: ip4(V4), targetIp: ip4(V4) });
    const direct = now.filter((p) => p.raw.subarray(0, 6).toString('hex') === '020000000002');
    expect(direct.map((p) => p.frame.kind).sort()).toEqual(['arp', 'ndp', 'ndp']);
    for (const d of direct) {
      const f = d.frame as ArpFrame | NdpFrame;
      expect(f.kind === 'arp' ? f.senderMac : f.linkAddress).toBe(SLEEPER);
    }
    // No all-nodes advertisement while the host may be running DAD for the address.
    const allNodes = () =>
      t.drain().filter((p) => p.raw.subarray(0, 6).toString('hex') === '333300000001');
    expect(now.filter((p) => p.raw.subarray(0, 6).toString('hex') === '333300000001')).toHaveLength(
      0,
    );
    t.advance(DAD_GRACE_MS - 100);
    expect(allNodes()).toHaveLength(0);
    t.advance(200);
    const na = allNodes();
    expect(na).toHaveLength(1);
    expect(na[0].frame).toMatchObject({ type: 'na', linkAddress: SLEEPER, override: true });
    expect(t.frame(arpRequest('10.9.0.2'))).toMatchObject({ kind: 'ignored', reason: 'awake' });
  });

  test('reconfigured, removed or stopped: handed back; a crash’s claims are handed back at start', () => {
    const t = setup();
    proxied(t);
    t.watcher.updateHosts([{ ...t.host.spec, proxy: false }]);
    expect(t.claims.size).toBe(0);
    expect(t.host.status.proxying).toBe(false);
    t.watcher.updateHosts([{ ...t.host.spec, proxy: true }]);
    t.advance(500);
    t.advance(PROBE_MS);
    expect(t.claims.size).toBe(2);
    t.watcher.removeHost('sleepy');
    expect(t.claims.size).toBe(0);

    const u = setup();
    proxied(u);
    const kept = [...u.claims.values()];
    u.drain();
    const repeats = u.watcher.stopProxy();
    expect(u.claims.size).toBe(0);
    expect(repeats).toHaveLength(2);
    expect(
      u.drain().map((p) => (p.frame as ArpFrame).senderMac ?? (p.frame as NdpFrame).linkAddress),
    ).toEqual([SLEEPER, SLEEPER]);

    const v = setup();
    v.drain();
    expect(v.watcher.recoverClaims(kept)).toEqual([]);
    const back = v.drain();
    expect(back).toHaveLength(2);
    expect(back[0].frame).toMatchObject({ kind: 'arp', senderMac: SLEEPER, senderIp: ip4(V4) });
    expect(back[1].frame).toMatchObject({ kind: 'ndp', type: 'na', linkAddress: SLEEPER });
    expect(v.logs.join('\n')).toMatch(/handed 10\.9\.0\.3 back to sleepy/);
  });
});

describe('the flood generator against a proxying watcher', () => {
  test('exactly the frames made malformed are counted so; nothing wakes, nothing conflicts', () => {
    const t = setup();
    proxied(t);
    const rand = generator(4242);
    let malformed = 0;
    for (let i = 0; i < 20_000; i++) {
      const f = hostileFrame6(rand, mac(VIGIL), V4, V6);
      if (f.malformed) malformed++;
      t.frame(f.frame);
    }
    expect(malformed).toBeGreaterThan(5000);
    expect(t.watcher.framesMalformed).toBe(malformed);
    expect(t.wakes).toHaveLength(0);
    expect([...t.claims.keys()]).toEqual([V4, V6]);
    expect(t.watcher.ignored.get('port-not-listed')).toBeGreaterThan(100);
  });
});
