import { parseIpv4, parseAddressList, parseMac } from '../../src/wol/addresses';
import { parseFrame } from '../../src/wol/frames';
import { arpFrame } from '../../src/wol/packets';
import {
  OWN_PROBE_WINDOW_MS,
  WolWatcher,
  type HostSpec,
  type HostState,
  type WakeDecision,
} from '../../src/wol/watcher';

const SLEEPER_MAC = '02:00:00:00:00:0a';
const SLEEPER_IP = '10.9.0.10';
const REQUESTER_MAC = parseMac('02:00:00:00:00:0b')!;
const REQUESTER_IP = '10.9.0.11';
const WATCHER_IP = '10.9.0.1';

const ip = (text: string): number => parseIpv4(text)!;

function setup(overrides: Partial<HostSpec> = {}) {
  let clock = 1_000_000;
  const wakes: WakeDecision[] = [];
  const states: [string, HostState, HostState][] = [];
  const seen: string[] = [];
  const watcher = new WolWatcher(
    {
      wake: (d) => wakes.push(d),
      stateChanged: (h, from, to) => states.push([h.spec.name, from, to]),
      seen: (h) => seen.push(h.spec.name),
    },
    () => clock,
  );
  watcher.addHost({
    name: 'theobromine',
    mac: SLEEPER_MAC,
    ip: SLEEPER_IP,
    ip6: [],
    interface: 'eth0',
    onlyFrom: [],
    ignoreFrom: [],
    timeout: 60,
    cooldown: 10,
    proxy: false,
    wakePorts: [],
    source: 'config',
    ...overrides,
  });
  watcher.setLocalAddresses('eth0', [WATCHER_IP]);
  return {
    watcher,
    wakes,
    states,
    seen,
    advance: (ms: number) => {
      clock += ms;
      return watcher.tick();
    },
  };
}

const request = (
  senderIp = REQUESTER_IP,
  targetIp = SLEEPER_IP,
  sourceMac: Buffer = REQUESTER_MAC,
): Buffer => arpFrame({ op: 'request', sourceMac, senderIp: ip(senderIp), targetIp: ip(targetIp) });

/** Let the host go offline: it was never seen, so after its timeout it is offline. */
function asleep(t: ReturnType<typeof setup>): void {
  t.advance(61_000);
  expect(t.watcher.host('theobromine')!.status.state).toBe('offline');
}

describe('WolWatcher wake rule', () => {
  test('an ARP request for an offline host wakes it once, then the cooldown holds', () => {
    const t = setup();
    asleep(t);
    const outcome = t.watcher.handleFrame('eth0', request());
    expect(outcome.kind).toBe('wake');
    expect(t.wakes).toHaveLength(1);
    expect(t.wakes[0]).toMatchObject({
      requesterIp: REQUESTER_IP,
      requesterMac: '02:00:00:00:00:0b',
      reason: 'arp',
      interface: 'eth0',
    });
    const host = t.watcher.host('theobromine')!;
    expect(host.status.state).toBe('waking');
    expect(host.status.wakeCount).toBe(1);

    t.advance(9_000);
    expect(t.watcher.handleFrame('eth0', request())).toMatchObject({
      kind: 'ignored',
      reason: 'cooldown',
    });
    expect(t.wakes).toHaveLength(1);

    // After the cooldown a still-sleeping host is woken again (the first packet may be lost).
    t.advance(1_000);
    expect(t.watcher.handleFrame('eth0', request()).kind).toBe('wake');
    expect(t.wakes).toHaveLength(2);
  });

  test('with cooldown 0 every request for a sleeping host wakes it', () => {
    const t = setup({ cooldown: 0 });
    asleep(t);
    for (let i = 0; i < 5; i++) expect(t.watcher.handleFrame('eth0', request()).kind).toBe('wake');
    expect(t.wakes).toHaveLength(5);
  });

  test('gratuitous ARP, ARP probes, replies and requests by the host itself wake nothing', () => {
    const t = setup();
    asleep(t);
    const other = parseMac('02:00:00:00:00:0c')!;
    const cases: [Buffer, string][] = [
      [request(SLEEPER_IP, SLEEPER_IP, other), 'gratuitous'],
      [request('0.0.0.0', SLEEPER_IP), 'probe'],
      [
        arpFrame({
          op: 'reply',
          sourceMac: REQUESTER_MAC,
          senderIp: ip(REQUESTER_IP),
          targetIp: ip(SLEEPER_IP),
        }),
        'reply',
      ],
    ];
    for (const [frame, reason] of cases) {
      expect(t.watcher.handleFrame('eth0', frame)).toMatchObject({ kind: 'ignored', reason });
    }
    expect(t.wakes).toHaveLength(0);
    expect(t.watcher.ignored.get('gratuitous')).toBe(1);
    expect(t.watcher.ignored.get('probe')).toBe(1);
    expect(t.watcher.ignored.get('reply')).toBe(1);
  });

  test('a request sent by the host itself is not a reason to wake it (and proves it awake)', () => {
    const t = setup();
    asleep(t);
    const own = request('10.9.0.77', '10.9.0.10', parseMac(SLEEPER_MAC)!);
    expect(t.watcher.handleFrame('eth0', own)).toMatchObject({ kind: 'ignored', reason: 'self' });
    expect(t.wakes).toHaveLength(0);
    expect(t.watcher.host('theobromine')!.status.state).toBe('online');
  });

  test('OnlyFrom: requesters outside the list wake nothing, those inside do', () => {
    const t = setup({ onlyFrom: parseAddressList('10.9.0.50, 10.9.1.0/24') });
    asleep(t);
    expect(t.watcher.handleFrame('eth0', request(REQUESTER_IP))).toMatchObject({
      kind: 'ignored',
      reason: 'not-allowed',
    });
    expect(t.watcher.handleFrame('eth0', request('10.9.1.99')).kind).toBe('wake');
    t.advance(10_000);
    expect(t.watcher.handleFrame('eth0', request('10.9.0.50')).kind).toBe('wake');
    expect(t.wakes.map((w) => w.requesterIp)).toEqual(['10.9.1.99', '10.9.0.50']);
  });

  test('online and unknown hosts are not woken', () => {
    const t = setup();
    expect(t.watcher.handleFrame('eth0', request())).toMatchObject({
      kind: 'ignored',
      reason: 'awake',
    });
    t.watcher.noteAlive('theobromine');
    expect(t.watcher.handleFrame('eth0', request())).toMatchObject({ reason: 'awake' });
    expect(t.wakes).toHaveLength(0);
  });

  test('requests for unwatched addresses or on another interface are not about any host', () => {
    const t = setup();
    asleep(t);
    expect(t.watcher.handleFrame('eth0', request(REQUESTER_IP, '10.9.0.99')).kind).toBe('none');
    expect(t.watcher.handleFrame('eth1', request()).kind).toBe('none');
    expect(t.wakes).toHaveLength(0);
  });

  test('the ARP our own ping causes does not wake, a later request from this machine does', () => {
    const t = setup({ timeout: 4 });
    const pinged = t.advance(0);
    expect(pinged.map((h) => h.spec.name)).toEqual(['theobromine']);
    t.advance(4_000);
    expect(t.watcher.host('theobromine')!.status.state).toBe('offline');
    // Our kernel still resolving the address for that ping: it must not wake the host.
    const ours = request(WATCHER_IP);
    expect(t.watcher.handleFrame('eth0', ours)).toMatchObject({ reason: 'own-probe' });
    t.advance(OWN_PROBE_WINDOW_MS);
    expect(t.watcher.handleFrame('eth0', ours).kind).toBe('wake');
  });
});

describe('WolWatcher liveness', () => {
  test('waking → online on the host own frames, recording the wake duration', () => {
    const t = setup();
    asleep(t);
    t.watcher.handleFrame('eth0', request());
    t.advance(4_200);
    const reply = arpFrame({
      op: 'reply',
      sourceMac: parseMac(SLEEPER_MAC)!,
      senderIp: ip(SLEEPER_IP),
      targetIp: ip(REQUESTER_IP),
      destinationMac: REQUESTER_MAC,
    });
    t.watcher.handleFrame('eth0', reply);
    const host = t.watcher.host('theobromine')!;
    expect(host.status.state).toBe('online');
    expect(host.status.lastWakeDuration).toBe(4_200);
    expect(t.states).toEqual([
      ['theobromine', 'unknown', 'offline'],
      ['theobromine', 'offline', 'waking'],
      ['theobromine', 'waking', 'online'],
    ]);
  });

  test('any frame from the host MAC (not only ARP) counts as a sign of life', () => {
    const t = setup();
    const ipv4 = Buffer.alloc(60);
    ipv4.fill(0xff, 0, 6);
    parseMac(SLEEPER_MAC)!.copy(ipv4, 6);
    ipv4.writeUInt16BE(0x0800, 12);
    ipv4[14] = 0x45; // an ICMP packet to somewhere
    ipv4.writeUInt16BE(46, 16);
    ipv4[23] = 1;
    expect(t.watcher.handleFrame('eth0', ipv4).kind).toBe('none');
    expect(t.watcher.host('theobromine')!.status.state).toBe('online');
    expect(t.seen).toEqual(['theobromine']);
    // Even a frame the parser drops says the host is awake: nothing else sends from its MAC.
    ipv4[14] = 0x00;
    expect(t.watcher.handleFrame('eth0', ipv4).kind).toBe('malformed');
    expect(t.seen).toEqual(['theobromine', 'theobromine']);
  });

  test('online → offline after Timeout seconds of silence; pings only when information is stale', () => {
    const t = setup({ timeout: 60 });
    expect(t.advance(0)).toHaveLength(1); // first ping, as wakeupd does
    t.watcher.noteAlive('theobromine');
    expect(t.advance(30_000)).toHaveLength(0); // exactly half: not older than half yet
    expect(t.advance(1)).toHaveLength(1);
    expect(t.advance(10_000)).toHaveLength(0); // pinged less than half a timeout ago
    t.advance(19_998);
    expect(t.watcher.host('theobromine')!.status.state).toBe('online');
    t.advance(1);
    expect(t.watcher.host('theobromine')!.status.state).toBe('offline');
    expect(t.advance(100_000)).toHaveLength(0); // offline hosts are not pinged
  });

  test('a waking host is pinged every second until it answers', () => {
    const t = setup({ timeout: 60 });
    asleep(t);
    t.watcher.handleFrame('eth0', request());
    expect(t.advance(999)).toHaveLength(0);
    expect(t.advance(1)).toHaveLength(1);
    expect(t.advance(1000)).toHaveLength(1);
    t.watcher.noteAliveByIp(undefined, SLEEPER_IP);
    expect(t.advance(1000)).toHaveLength(0);
  });

  test('an echo reply by IP marks the host alive; a wake that gets no answer times out', () => {
    const t = setup({ timeout: 20 });
    asleep(t);
    t.watcher.handleFrame('eth0', request());
    t.advance(19_999);
    expect(t.watcher.host('theobromine')!.status.state).toBe('waking');
    t.advance(1);
    expect(t.watcher.host('theobromine')!.status.state).toBe('offline');
    t.watcher.noteAliveByIp('eth0', SLEEPER_IP);
    expect(t.watcher.host('theobromine')!.status.state).toBe('online');
  });

  test('a manual wake sends whatever the cooldown; an online host stays online', () => {
    const t = setup();
    t.watcher.noteAlive('theobromine');
    t.watcher.wakeManually('theobromine');
    t.watcher.wakeManually('theobromine');
    expect(t.wakes.map((w) => w.reason)).toEqual(['manual', 'manual']);
    expect(t.watcher.host('theobromine')!.status.state).toBe('online');
    expect(() => t.watcher.wakeManually('nobody')).toThrow(/no host named/);
  });
});

describe('WolWatcher hosts and malformed input', () => {
  test('duplicate names or addresses and bad timings are refused', () => {
    const t = setup();
    const base: HostSpec = {
      name: 'other',
      mac: '02:00:00:00:00:99',
      ip: '10.9.0.99',
      ip6: [],
      interface: 'eth0',
      onlyFrom: [],
      ignoreFrom: [],
      timeout: 60,
      cooldown: 0,
      proxy: false,
      wakePorts: [],
      source: 'bus',
    };
    expect(() => t.watcher.addHost({ ...base, name: 'theobromine' })).toThrow(/exists/);
    expect(() => t.watcher.addHost({ ...base, ip: SLEEPER_IP })).toThrow(/already watched/);
    expect(() => t.watcher.addHost({ ...base, timeout: 0 })).toThrow(/timeout/);
    expect(() => t.watcher.addHost({ ...base, cooldown: -1 })).toThrow(/cooldown/);
    expect(() => t.watcher.addHost({ ...base, timeout: 1.5 })).toThrow(/timeout/);
    // Same IP on another interface is another LAN.
    expect(t.watcher.addHost({ ...base, ip: SLEEPER_IP, interface: 'eth1' }).spec.name).toBe(
      'other',
    );
    expect(t.watcher.interfaces()).toEqual(['eth0', 'eth1']);
    t.watcher.removeHost('other');
    expect(t.watcher.interfaces()).toEqual(['eth0']);
    expect(() => t.watcher.removeHost('other')).toThrow(/no host named/);
  });

  test('truncated and malformed frames are counted and dropped, never wake', () => {
    const t = setup({ cooldown: 0 });
    asleep(t);
    const good = request();
    const bad: Buffer[] = [];
    for (let n = 0; n < good.length; n++) bad.push(good.subarray(0, n)); // every truncation
    const mutate = (offset: number, value: number) => {
      const b = Buffer.from(good);
      b[offset] = value;
      return b;
    };
    bad.push(mutate(15, 6)); // hardware type 6
    bad.push(mutate(17, 0xdd)); // protocol type 0x08dd
    bad.push(mutate(18, 8)); // hardware length 8
    bad.push(mutate(19, 16)); // protocol length 16
    bad.push(mutate(21, 3)); // RARP operation
    bad.push(mutate(6, 0x01)); // multicast source MAC
    bad.push(mutate(22, 0xff)); // broadcast-bit sender MAC
    for (const frame of bad) expect(t.watcher.handleFrame('eth0', frame).kind).toBe('malformed');
    // A frame the capture reports as truncated is malformed even if its bytes look fine.
    expect(t.watcher.handleFrame('eth0', good, good.length, true).kind).toBe('malformed');
    expect(t.watcher.framesMalformed).toBe(bad.length + 1);
    expect(t.watcher.framesSeen).toBe(bad.length + 1);
    expect(t.wakes).toHaveLength(0);
    // A length beyond the buffer is clamped, never read past the end.
    expect(t.watcher.handleFrame('eth0', good.subarray(0, 30), 4096).kind).toBe('malformed');
    expect(t.watcher.handleFrame('eth0', good).kind).toBe('wake');
  });

  test('random bytes never throw and never wake', () => {
    const t = setup({ cooldown: 0 });
    asleep(t);
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 20_000; i++) {
      const frame = Buffer.alloc(rand() % 80);
      for (let j = 0; j < frame.length; j++) frame[j] = rand();
      if (frame.length >= 14 && i % 2 === 0) frame.writeUInt16BE(0x0806, 12);
      t.watcher.handleFrame('eth0', frame);
    }
    expect(t.watcher.framesSeen).toBe(20_000);
    expect(t.wakes).toHaveLength(0);
  });

  test('VLAN-tagged ARP requests are understood', () => {
    const plain = request();
    const tagged = Buffer.concat([
      plain.subarray(0, 12),
      Buffer.from([0x81, 0x00, 0x00, 0x05]),
      plain.subarray(12),
    ]);
    expect(parseFrame(tagged)).toMatchObject({
      kind: 'arp',
      op: 'request',
      senderIp: ip(REQUESTER_IP),
      targetIp: ip(SLEEPER_IP),
    });
  });
});
