import { invalidArgument, VigilError } from '../core/errors';
import {
  anyRangeContains,
  formatIpv4,
  formatIpv6,
  isLinkLocal6,
  isUnicast6,
  isUnspecified6,
  parseIpv4,
  parseIpv6,
  type AddressRange,
  type IpValue,
} from './addresses';
import { parseFrame, type ArpFrame, type Frame, type IpFrame, type NdpFrame } from './frames';
import {
  SleepProxy,
  v4Key,
  v6Key,
  type InterfaceState,
  type ProxyAddress,
  type ProxyClaim,
  type ProxyListener,
  type ProxyVerdict,
} from './proxy';

/**
 * The Wake-on-LAN watcher as a pure state machine: frames and clock ticks in, decisions out.
 * No sockets, no bus, no timers: the service feeds it and acts on what it decides, which
 * keeps every rule testable with crafted frames and a hand-driven clock. The sleep proxy
 * (proxy.ts) is part of it: it answers for sleeping hosts, the watcher decides on the traffic
 * that then arrives.
 */

export type HostState = 'unknown' | 'online' | 'offline' | 'waking';

/** One `wake_ports` entry: `tcp/22`, `udp/51820`. */
export interface WakePort {
  readonly protocol: 'tcp' | 'udp';
  readonly port: number;
}

export interface HostSpec {
  readonly name: string;
  /** Normalized lower-case `aa:bb:cc:dd:ee:ff`. */
  readonly mac: string;
  readonly ip: string;
  /** Configured IPv6 addresses (canonical text); learned ones are in the status. */
  readonly ip6: readonly string[];
  readonly interface: string;
  /** Requesters allowed to cause a wake; empty means anyone. */
  readonly onlyFrom: readonly AddressRange[];
  /** Requesters that never cause a wake (a router refreshing its cache, a scanner). */
  readonly ignoreFrom: readonly AddressRange[];
  /** Seconds of silence after which the host is offline (and a wake gives up). */
  readonly timeout: number;
  /** Seconds after a wake during which requests wake nothing. */
  readonly cooldown: number;
  /** Answer ARP/NS for the host while it sleeps and wake it only for real traffic. */
  readonly proxy: boolean;
  /** What traffic wakes a proxied host; empty means any TCP SYN or UDP datagram. */
  readonly wakePorts: readonly WakePort[];
  /** Where the host was defined: the config file or AddHost (persisted). */
  readonly source: 'config' | 'bus';
}

export interface HostStatus {
  state: HostState;
  /** Milliseconds since the epoch, 0 = never. */
  lastSeen: number;
  lastWake: number;
  wakeCount: number;
  /** Milliseconds from the last wake packet to the first sign of life, 0 = unknown. */
  lastWakeDuration: number;
  /** `arp`, `ndp`, `tcp/PORT`, `udp/PORT` or `manual`; empty before the first wake. */
  lastWakeReason: string;
  lastPing: number;
  /** IPv6 addresses learned from the host's own traffic, oldest first. */
  learnedIp6: string[];
  /** True while the sleep proxy answers for at least one of its addresses. */
  proxying: boolean;
  /** When watching started, for the unknown → offline timeout. */
  readonly since: number;
}

export interface Host {
  readonly spec: HostSpec;
  readonly status: HostStatus;
}

/** Every IPv6 address of a host: configured, then learned. */
export const hostIp6 = (host: Host): string[] => [...host.spec.ip6, ...host.status.learnedIp6];

/** `arp`, `ndp`, `manual`, `tcp/PORT` or `udp/PORT`. */
export type WakeTrigger = string;

export interface WakeDecision {
  readonly host: Host;
  readonly interface: string;
  readonly requesterIp: string;
  readonly requesterMac: string;
  readonly reason: WakeTrigger;
}

/** What became of one request for a sleeping host, as the wake history keeps it. */
export type WakeOutcome = 'woke' | 'cooldown' | 'not-allowed' | 'ignored' | 'port-not-listed';

export interface WakeRecord {
  readonly time: number;
  readonly host: string;
  readonly mac: string;
  readonly interface: string;
  readonly trigger: WakeTrigger;
  readonly requesterIp: string;
  readonly requesterMac: string;
  readonly outcome: WakeOutcome;
}

export type IgnoreReason =
  | 'reply'
  | 'probe'
  | 'gratuitous'
  | 'self'
  | 'own-probe'
  | 'not-allowed'
  | 'ignore-from'
  | 'port-not-listed'
  | 'awake'
  | 'cooldown'
  /** The sleep proxy answers for (or is probing) the address: ARP and NS alone never wake. */
  | 'proxied'
  /** Traffic for a proxied address that is neither a TCP SYN nor a UDP datagram. */
  | 'not-a-wake';

const RECORDED: Partial<Record<IgnoreReason, WakeOutcome>> = {
  'not-allowed': 'not-allowed',
  'ignore-from': 'ignored',
  'port-not-listed': 'port-not-listed',
  cooldown: 'cooldown',
};

export type FrameOutcome =
  | { readonly kind: 'malformed'; readonly reason: string }
  | { readonly kind: 'ignored'; readonly reason: IgnoreReason; readonly host: Host }
  | { readonly kind: 'wake'; readonly decision: WakeDecision }
  /** The sleep proxy answered the request for the host. */
  | { readonly kind: 'answered'; readonly host: Host }
  /** Not about any watched host (or only liveness was noted). */
  | { readonly kind: 'none' };

export interface WatcherListener {
  wake(decision: WakeDecision): void;
  stateChanged(host: Host, from: HostState, to: HostState, why: string): void;
  seen(host: Host): void;
  /** Every decision about a request for a sleeping host, refusals too (the wake history). */
  decided?(record: WakeRecord): void;
  /** The host's learned IPv6 addresses changed. */
  learned?(host: Host): void;
  /** What the sleep proxy sends, claims and reports. */
  proxy?: ProxyListener;
}

/** Our own ping of a host makes the kernel ARP for it for about 3 s (mcast_solicit × 1 s). */
export const OWN_PROBE_WINDOW_MS = 5000;
/** How often a waking host is pinged to see it come up. */
export const WAKING_PING_INTERVAL_MS = 1000;
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;
/** Learned IPv6 addresses kept per host; the longest unseen goes first (privacy addresses rotate). */
export const MAX_LEARNED_IP6 = 8;

export function validateTiming(timeout: number, cooldown: number): void {
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TIMEOUT_SECONDS) {
    throw invalidArgument(`timeout must be a whole number of seconds in 1..${MAX_TIMEOUT_SECONDS}`);
  }
  if (!Number.isInteger(cooldown) || cooldown < 0 || cooldown > MAX_TIMEOUT_SECONDS) {
    throw invalidArgument(
      `cooldown must be a whole number of seconds in 0..${MAX_TIMEOUT_SECONDS}`,
    );
  }
}

/** A configured address as the maps key it. */
function addressOf(text: string): ProxyAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) {
    return { family: 4, text, key: v4Key(v4), value: v4, bytes: Buffer.alloc(0) };
  }
  const v6 = parseIpv6(text);
  if (!v6) return undefined;
  return { family: 6, text: formatIpv6(v6), key: v6Key(v6), value: 0, bytes: v6 };
}

/** The spec's own addresses (IPv4, then configured IPv6), checked. */
function configuredAddresses(spec: HostSpec): ProxyAddress[] {
  validateTiming(spec.timeout, spec.cooldown);
  const out: ProxyAddress[] = [];
  for (const text of [spec.ip, ...spec.ip6]) {
    const a = addressOf(text);
    if (!a || (a.family === 4) !== (text === spec.ip)) {
      throw invalidArgument(`invalid address "${text}" for host "${spec.name}"`);
    }
    if (out.some((o) => o.key === a.key)) {
      throw invalidArgument(`host "${spec.name}" has ${a.text} twice`);
    }
    out.push(a);
  }
  return out;
}

interface HostEntry extends Host {
  // Mutable for updateHosts: a reloaded host keeps its entry, which its bus object holds.
  spec: HostSpec;
  configured: ProxyAddress[];
  /** Learned IPv6 addresses by key, with when each was last seen. */
  readonly learned: Map<string, { address: ProxyAddress; lastSeen: number }>;
  readonly status: HostStatus;
}

/** This machine's own addresses on an interface, and what the sleep proxy must know of it. */
export interface LocalInterface extends InterfaceState {
  readonly ipv4: readonly number[];
}

const NO_PROXY_OUTPUT: ProxyListener = {
  send: () => undefined,
  claimed: () => undefined,
  released: () => undefined,
  proxyingChanged: () => undefined,
  log: () => undefined,
};

export class WolWatcher {
  framesSeen = 0;
  framesMalformed = 0;
  readonly ignored = new Map<IgnoreReason, number>();
  readonly proxy: SleepProxy;
  /** The proxy takes hosts over only when the service can capture and send frames. */
  proxyAvailable = true;
  private readonly hosts = new Map<string, HostEntry>();
  /** `iface|4|value` and `iface|6|hex` (configured and learned) to the host. */
  private readonly byAddress = new Map<string, HostEntry>();
  private readonly byMac = new Map<string, HostEntry[]>();
  private readonly locals = new Map<string, LocalInterface>();
  /** This machine's own IPv4 and IPv6 address keys per interface. */
  private readonly localKeys = new Map<string, ReadonlySet<string>>();

  constructor(
    private readonly listener: WatcherListener,
    private readonly now: () => number = Date.now,
  ) {
    this.proxy = new SleepProxy(listener.proxy ?? NO_PROXY_OUTPUT);
  }

  /** Add a host (validated by the caller); duplicates of name, or an address on the same interface, are refused. */
  addHost(spec: HostSpec): Host {
    if (this.hosts.has(spec.name)) throw invalidArgument(`a host named "${spec.name}" exists`);
    const configured = configuredAddresses(spec);
    this.refuseClash(spec, configured);
    const entry: HostEntry = {
      spec,
      configured,
      learned: new Map(),
      status: {
        state: 'unknown',
        lastSeen: 0,
        lastWake: 0,
        wakeCount: 0,
        lastWakeDuration: 0,
        lastWakeReason: '',
        lastPing: 0,
        learnedIp6: [],
        proxying: false,
        since: this.now(),
      },
    };
    this.hosts.set(spec.name, entry);
    this.index(entry);
    return entry;
  }

  /**
   * Change hosts' settings in place (a config reload): each keeps its name, MAC, state and
   * counters, and the object its bus object reads. All or nothing: an address that would
   * clash after the change refuses the lot, so two hosts may swap addresses. A host whose
   * proxy settings or addresses change is handed back first; the next tick takes it over
   * again if it still sleeps and should be proxied.
   */
  updateHosts(specs: readonly HostSpec[]): Host[] {
    const updates = specs.map((spec) => {
      const entry = this.hosts.get(spec.name);
      if (!entry || entry.spec.mac !== spec.mac) {
        throw invalidArgument(`no host "${spec.name}" with MAC ${spec.mac} to update`);
      }
      return { entry, spec, configured: configuredAddresses(spec) };
    });
    for (const u of updates) this.unindex(u.entry);
    try {
      for (const [i, u] of updates.entries()) {
        this.refuseClash(u.spec, u.configured);
        for (const other of updates.slice(0, i)) {
          if (other.spec.interface !== u.spec.interface) continue;
          const twin = u.configured.find((a) => other.configured.some((o) => o.key === a.key));
          if (twin) throw invalidArgument(`${twin.text} is given to "${other.spec.name}" too`);
        }
      }
    } catch (e) {
      for (const u of updates) this.index(u.entry);
      throw e;
    }
    const now = this.now();
    for (const u of updates) {
      const before = u.entry.spec;
      const moved =
        before.interface !== u.spec.interface ||
        before.proxy !== u.spec.proxy ||
        u.entry.configured.map((a) => a.key).join() !== u.configured.map((a) => a.key).join();
      if (moved) this.proxy.end(u.entry, now, `the settings of ${u.spec.name} changed`);
      u.entry.spec = u.spec;
      u.entry.configured = u.configured;
      if (before.interface !== u.spec.interface) u.entry.learned.clear();
      for (const a of u.configured) u.entry.learned.delete(a.key);
      this.syncLearned(u.entry);
      this.index(u.entry);
    }
    return updates.map((u) => u.entry);
  }

  private refuseClash(spec: HostSpec, configured: readonly ProxyAddress[]): void {
    for (const a of configured) {
      const clash = this.byAddress.get(`${spec.interface}|${a.key}`);
      if (clash && clash.configured.some((c) => c.key === a.key)) {
        throw invalidArgument(
          `${a.text} on ${spec.interface} is already watched as "${clash.spec.name}"`,
        );
      }
    }
  }

  private index(entry: HostEntry): void {
    const iface = entry.spec.interface;
    for (const a of entry.configured) {
      // A configured address wins over one another host merely learned.
      const other = this.byAddress.get(`${iface}|${a.key}`);
      if (other && other !== entry) {
        other.learned.delete(a.key);
        this.syncLearned(other);
      }
      this.byAddress.set(`${iface}|${a.key}`, entry);
    }
    for (const { address } of entry.learned.values()) {
      if (!this.byAddress.has(`${iface}|${address.key}`)) {
        this.byAddress.set(`${iface}|${address.key}`, entry);
      }
    }
    const macKey = `${iface}|${entry.spec.mac}`;
    this.byMac.set(macKey, [...(this.byMac.get(macKey) ?? []), entry]);
  }

  private unindex(entry: HostEntry): void {
    const iface = entry.spec.interface;
    for (const a of [...entry.configured, ...[...entry.learned.values()].map((l) => l.address)]) {
      if (this.byAddress.get(`${iface}|${a.key}`) === entry) {
        this.byAddress.delete(`${iface}|${a.key}`);
      }
    }
    const macKey = `${iface}|${entry.spec.mac}`;
    const rest = (this.byMac.get(macKey) ?? []).filter((e) => e !== entry);
    if (rest.length) this.byMac.set(macKey, rest);
    else this.byMac.delete(macKey);
  }

  /** Restore what is kept across restarts (wake counters, learned addresses). */
  restoreStatus(
    name: string,
    saved: Partial<
      Pick<HostStatus, 'lastWake' | 'wakeCount' | 'lastWakeDuration' | 'lastWakeReason'>
    >,
    learned: readonly { address: string; lastSeen: number }[] = [],
  ): void {
    const entry = this.hosts.get(name);
    if (!entry) return;
    Object.assign(entry.status, saved);
    for (const l of learned) {
      const bytes = parseIpv6(l.address);
      if (bytes) this.learn(entry, bytes, l.lastSeen, false);
    }
  }

  removeHost(name: string): Host {
    const entry = this.hosts.get(name);
    if (!entry) throw new VigilError('NotFound', `no host named "${name}"`);
    this.proxy.end(entry, this.now(), `${name} is no longer watched`);
    this.hosts.delete(name);
    this.unindex(entry);
    return entry;
  }

  host(name: string): Host | undefined {
    return this.hosts.get(name);
  }

  hostsByMac(mac: string): Host[] {
    return [...this.hosts.values()].filter((h) => h.spec.mac === mac);
  }

  list(): Host[] {
    return [...this.hosts.values()];
  }

  interfaces(): string[] {
    return [...new Set([...this.hosts.values()].map((h) => h.spec.interface))].sort();
  }

  /** Every address of a host (IPv4, configured and learned IPv6), as the proxy handles them. */
  addresses(host: Host): ProxyAddress[] {
    const entry = this.hosts.get(host.spec.name);
    if (!entry) return [];
    return [...entry.configured, ...[...entry.learned.values()].map((l) => l.address)];
  }

  /** This machine on an interface: its MAC and addresses (its own requests are recognised by them). */
  setInterface(iface: string, info: LocalInterface): void {
    this.locals.set(iface, info);
    this.proxy.setInterface(iface, info);
    this.localKeys.set(
      iface,
      new Set([...info.ipv4.map((v) => v4Key(v)), ...info.ipv6.map((a) => v6Key(a.bytes))]),
    );
  }

  /** Only this machine's own addresses on an interface (no MAC: no proxy there). */
  setLocalAddresses(iface: string, addresses: readonly string[]): void {
    const parsed = addresses.map(addressOf).filter((a): a is ProxyAddress => a !== undefined);
    const old = this.locals.get(iface);
    this.setInterface(iface, {
      mac: old?.mac,
      ipv4Forwarding: old?.ipv4Forwarding ?? false,
      ipv6Forwarding: old?.ipv6Forwarding ?? false,
      ipv6Disabled: old?.ipv6Disabled ?? false,
      ipv4: parsed.filter((a) => a.family === 4).map((a) => a.value),
      ipv6: parsed.filter((a) => a.family === 6).map((a) => ({ bytes: a.bytes, prefix: 64 })),
    });
  }

  /** Hand back every proxied address (the daemon stops); the announcements, to repeat once. */
  stopProxy(): { iface: string; frame: Buffer }[] {
    return this.proxy.stop(this.now());
  }

  /** Hand back what a previous run took over and did not give back; returns what is left. */
  recoverClaims(claims: readonly ProxyClaim[]): ProxyClaim[] {
    return this.proxy.recover(claims, addressOf, this.now());
  }

  /** One captured frame from `iface`. Counts it, notes liveness, decides whether to wake. */
  handleFrame(iface: string, buf: Buffer, length = buf.length, truncated = false): FrameOutcome {
    this.framesSeen++;
    const frame = parseFrame(buf, length, truncated);
    return this.handleParsed(iface, frame);
  }

  handleParsed(iface: string, frame: Frame): FrameOutcome {
    const now = this.now();
    if (frame.kind === 'malformed') {
      this.framesMalformed++;
      // Dropped, but a frame from a host's MAC still says it is awake.
      const from = frame.sourceMac && this.byMac.get(`${iface}|${frame.sourceMac}`);
      if (from) for (const host of from) this.markSeen(host, now);
      return { kind: 'malformed', reason: frame.reason };
    }
    const senders = this.byMac.get(`${iface}|${frame.sourceMac}`);
    if (senders) {
      for (const host of senders) {
        this.markSeen(host, now);
        if (frame.kind === 'ndp' || (frame.kind === 'ip' && frame.family === 6)) {
          this.learnFrom(host, frame, now);
        }
      }
    }
    switch (frame.kind) {
      case 'arp':
        return this.onArp(iface, frame, now);
      case 'ndp':
        return this.onNdp(iface, frame, now);
      case 'ip':
        return this.onIp(iface, frame, now);
      default:
        return { kind: 'none' };
    }
  }

  /**
   * Learn the host's IPv6 addresses from what only it can send: link-local sources (never
   * routed), and the addresses of its Neighbor Discovery (hop limit 255, never routed either).
   * The source of other traffic is not learned: a host that routes for others would lend
   * vigil addresses that are not its own.
   */
  private learnFrom(host: HostEntry, frame: NdpFrame | IpFrame, now: number): void {
    const source = frame.sourceIp as Buffer;
    if (isLinkLocal6(source) && isUnicast6(source)) this.learn(host, source, now);
    if (frame.kind !== 'ndp') return;
    if (frame.type === 'na') {
      if (frame.linkAddress === undefined || frame.linkAddress === host.spec.mac) {
        this.learn(host, frame.target, now);
      }
    } else if (isUnspecified6(frame.sourceIp)) {
      // Its duplicate address detection: an address it takes, and one not to advertise now.
      this.learn(host, frame.target, now);
      this.proxy.noteDad(host.spec.interface, v6Key(frame.target), now);
    } else {
      this.learn(host, frame.sourceIp, now);
    }
  }

  private learn(host: HostEntry, bytes: Buffer, now: number, announce = true): void {
    if (!isUnicast6(bytes)) return;
    const key = v6Key(bytes);
    const known = host.learned.get(key);
    if (known) {
      known.lastSeen = now;
      return;
    }
    if (host.configured.some((a) => a.key === key)) return;
    const indexKey = `${host.spec.interface}|${key}`;
    if (this.byAddress.has(indexKey)) return; // another host's address
    const copy = Buffer.from(bytes);
    const address: ProxyAddress = {
      family: 6,
      text: formatIpv6(copy),
      key,
      value: 0,
      bytes: copy,
    };
    host.learned.set(key, { address, lastSeen: now });
    this.byAddress.set(indexKey, host);
    if (host.learned.size > MAX_LEARNED_IP6) {
      let oldest: string | undefined;
      let oldestSeen = Infinity;
      for (const [k, l] of host.learned) {
        if (l.lastSeen < oldestSeen) {
          oldest = k;
          oldestSeen = l.lastSeen;
        }
      }
      if (oldest !== undefined) {
        host.learned.delete(oldest);
        if (this.byAddress.get(`${host.spec.interface}|${oldest}`) === host) {
          this.byAddress.delete(`${host.spec.interface}|${oldest}`);
        }
      }
    }
    this.syncLearned(host);
    if (announce) this.listener.learned?.(host);
  }

  private syncLearned(host: HostEntry): void {
    host.status.learnedIp6 = [...host.learned.values()].map((l) => l.address.text);
  }

  /** Learned addresses with when each was last seen, for the store. */
  learnedAddresses(host: Host): { address: string; lastSeen: number }[] {
    const entry = this.hosts.get(host.spec.name);
    return [...(entry?.learned.values() ?? [])].map((l) => ({
      address: l.address.text,
      lastSeen: l.lastSeen,
    }));
  }

  private onArp(iface: string, frame: ArpFrame, now: number): FrameOutcome {
    if (frame.senderMac !== frame.sourceMac) {
      const arpSenders = this.byMac.get(`${iface}|${frame.senderMac}`);
      if (arpSenders) for (const host of arpSenders) this.markSeen(host, now);
    }
    const target = v4Key(frame.targetIp);
    const verdict = this.proxy.handleArp(iface, frame, now, target);
    const host = this.byAddress.get(`${iface}|${target}`);
    if (!host) return { kind: 'none' };
    let reason: IgnoreReason | undefined;
    if (frame.op !== 'request') reason = 'reply';
    else if (frame.senderIp === 0) reason = 'probe';
    else if (frame.senderIp === frame.targetIp) reason = 'gratuitous';
    else if (
      frame.senderMac === host.spec.mac ||
      frame.sourceMac === host.spec.mac ||
      host.configured.some((a) => a.family === 4 && a.value === frame.senderIp)
    ) {
      reason = 'self';
    }
    return this.request(iface, host, now, reason, verdict, {
      trigger: 'arp',
      ip: frame.senderIp,
      text: formatIpv4(frame.senderIp),
      mac: frame.senderMac,
    });
  }

  private onNdp(iface: string, frame: NdpFrame, now: number): FrameOutcome {
    const target = v6Key(frame.target);
    const verdict = this.proxy.handleNdp(iface, frame, now, target);
    if (frame.type !== 'ns') return { kind: 'none' };
    const host = this.byAddress.get(`${iface}|${target}`);
    if (!host) return { kind: 'none' };
    let reason: IgnoreReason | undefined;
    const sourceKey = v6Key(frame.sourceIp);
    if (isUnspecified6(frame.sourceIp)) reason = 'probe';
    else if (
      frame.sourceMac === host.spec.mac ||
      frame.linkAddress === host.spec.mac ||
      this.byAddress.get(`${iface}|${sourceKey}`) === host
    ) {
      reason = 'self';
    }
    return this.request(iface, host, now, reason, verdict, {
      trigger: 'ndp',
      ip: Buffer.from(frame.sourceIp),
      text: formatIpv6(frame.sourceIp),
      mac: frame.linkAddress ?? frame.sourceMac,
    });
  }

  /** An ARP request or NS for a host's address: the wake rules shared by both. */
  private request(
    iface: string,
    host: HostEntry,
    now: number,
    early: IgnoreReason | undefined,
    verdict: ProxyVerdict,
    requester: { trigger: WakeTrigger; ip: IpValue; text: string; mac: string },
  ): FrameOutcome {
    let reason = early;
    if (!reason) {
      const key = typeof requester.ip === 'number' ? v4Key(requester.ip) : v6Key(requester.ip);
      if (
        host.status.lastPing !== 0 &&
        now - host.status.lastPing < OWN_PROBE_WINDOW_MS &&
        this.localKeys.get(iface)?.has(key)
      ) {
        reason = 'own-probe';
      } else if (host.status.state !== 'offline' && host.status.state !== 'waking') {
        reason = 'awake';
      } else if (verdict !== undefined) {
        reason = 'proxied';
      }
    }
    if (verdict === 'answered') {
      this.count('proxied');
      return { kind: 'answered', host };
    }
    return this.rules(iface, host, now, reason, requester);
  }

  /** Traffic that reached our MAC for an address the proxy answers for: does it mean "wake up"? */
  private onIp(iface: string, frame: IpFrame, now: number): FrameOutcome {
    const own = this.locals.get(iface)?.mac;
    if (own === undefined || frame.destinationMac !== own) return { kind: 'none' };
    const destination =
      typeof frame.destinationIp === 'number'
        ? v4Key(frame.destinationIp)
        : v6Key(frame.destinationIp);
    const proxied = this.proxy.takenFor(iface, destination);
    const host = proxied ? this.hosts.get(proxied.spec.name) : undefined;
    if (!host) return { kind: 'none' };
    this.proxy.noteTraffic(iface, destination, frame.sourceMac, frame.sourceIp);
    const opening = (frame.transport === 'tcp' && frame.syn) || frame.transport === 'udp';
    if (!opening) {
      this.count('not-a-wake');
      return { kind: 'ignored', reason: 'not-a-wake', host };
    }
    const protocol = frame.transport === 'tcp' ? 'tcp' : 'udp';
    const ports = host.spec.wakePorts;
    const listed =
      ports.length === 0 ||
      ports.some((p) => p.protocol === protocol && p.port === frame.destinationPort);
    const source = frame.sourceIp;
    return this.rules(iface, host, now, listed ? undefined : 'port-not-listed', {
      trigger: `${protocol}/${frame.destinationPort}`,
      ip: typeof source === 'number' ? source : Buffer.from(source),
      text: typeof source === 'number' ? formatIpv4(source) : formatIpv6(source),
      mac: frame.sourceMac,
    });
  }

  /**
   * The rules every trigger passes, after its own (`early`): ignore_from, only_from, then the
   * listed ports and the cooldown. What a requester was refused is recorded like a wake.
   */
  private rules(
    iface: string,
    host: HostEntry,
    now: number,
    early: IgnoreReason | undefined,
    requester: { trigger: WakeTrigger; ip: IpValue; text: string; mac: string },
  ): FrameOutcome {
    let reason = early;
    const portRefused = reason === 'port-not-listed';
    if (!reason || portRefused) {
      if (anyRangeContains(host.spec.ignoreFrom, requester.ip)) reason = 'ignore-from';
      else if (host.spec.onlyFrom.length && !anyRangeContains(host.spec.onlyFrom, requester.ip)) {
        reason = 'not-allowed';
      } else if (
        !portRefused &&
        host.status.lastWake !== 0 &&
        now - host.status.lastWake < host.spec.cooldown * 1000
      ) {
        reason = 'cooldown';
      }
    }
    const base = {
      time: now,
      host: host.spec.name,
      mac: host.spec.mac,
      interface: iface,
      trigger: requester.trigger,
      requesterIp: requester.text,
      requesterMac: requester.mac,
    };
    if (reason) {
      this.count(reason);
      const outcome = RECORDED[reason];
      if (outcome) this.listener.decided?.({ ...base, outcome });
      return { kind: 'ignored', reason, host };
    }
    this.listener.decided?.({ ...base, outcome: 'woke' });
    const decision = this.wake(host, now, {
      interface: iface,
      requesterIp: requester.text,
      requesterMac: requester.mac,
      reason: requester.trigger,
    });
    return { kind: 'wake', decision };
  }

  private count(reason: IgnoreReason): void {
    this.ignored.set(reason, (this.ignored.get(reason) ?? 0) + 1);
  }

  /** A manual wake (D-Bus `Wake`): always sends, whatever the state and cooldown. */
  wakeManually(name: string): WakeDecision {
    const host = this.hosts.get(name);
    if (!host) throw new VigilError('NotFound', `no host named "${name}"`);
    const now = this.now();
    this.listener.decided?.({
      time: now,
      host: name,
      mac: host.spec.mac,
      interface: host.spec.interface,
      trigger: 'manual',
      requesterIp: '',
      requesterMac: '',
      outcome: 'woke',
    });
    return this.wake(host, now, {
      interface: host.spec.interface,
      requesterIp: '',
      requesterMac: '',
      reason: 'manual',
    });
  }

  private wake(host: HostEntry, now: number, how: Omit<WakeDecision, 'host'>): WakeDecision {
    host.status.lastWake = now;
    host.status.wakeCount++;
    host.status.lastWakeDuration = 0;
    host.status.lastWakeReason = how.reason;
    const decision: WakeDecision = { host, ...how };
    this.listener.wake(decision);
    // An online host woken by hand stays online; anything else is now waiting to wake up.
    if (host.status.state !== 'online') {
      this.setState(
        host,
        'waking',
        how.reason === 'manual' ? 'woken on request' : `${how.reason} from ${how.requesterIp}`,
      );
    }
    return decision;
  }

  private markSeen(host: HostEntry, now: number): void {
    host.status.lastSeen = now;
    const from = host.status.state;
    if (from === 'waking' && host.status.lastWake !== 0) {
      host.status.lastWakeDuration = Math.max(1, now - host.status.lastWake);
    }
    // Hand back before anything else: from now on the host answers for itself.
    this.proxy.seen(host, now);
    if (from !== 'online') {
      const why =
        from === 'waking'
          ? `woke up ${(host.status.lastWakeDuration / 1000).toFixed(1)} s after the wake packet`
          : 'seen on the network';
      this.setState(host, 'online', why);
    }
    this.listener.seen(host);
  }

  /** An ICMP echo reply (or any other sign of life found outside the capture). */
  noteAlive(name: string): void {
    const host = this.hosts.get(name);
    if (host) this.markSeen(host, this.now());
  }

  /** An echo reply from `ip` (IPv4 or IPv6 text): the hosts with that address are alive. */
  noteAliveByIp(iface: string | undefined, ip: string): void {
    const a = addressOf(ip);
    if (!a) return;
    for (const host of [...this.hosts.values()]) {
      if (iface !== undefined && host.spec.interface !== iface) continue;
      if (this.byAddress.get(`${host.spec.interface}|${a.key}`) === host) {
        this.markSeen(host, this.now());
      }
    }
  }

  /**
   * Advance the clock: time hosts out, and return the hosts to ping now. As in wakeupd, a host
   * is pinged once at first, then while online only when what we know of it is older than
   * half its timeout (and not more often than that); while waking, every second. A proxy
   * host that sleeps is probed (and pinged) before its addresses are taken over.
   */
  tick(): Host[] {
    const now = this.now();
    const toPing: Host[] = [];
    for (const host of this.hosts.values()) {
      const s = host.status;
      const timeoutMs = host.spec.timeout * 1000;
      if (s.state === 'online' && now - s.lastSeen >= timeoutMs) {
        this.setState(host, 'offline', `silent for ${host.spec.timeout} s`);
      } else if (s.state === 'waking' && now - s.lastWake >= timeoutMs) {
        this.setState(host, 'offline', `no sign of life ${host.spec.timeout} s after the wake`);
      } else if (s.state === 'unknown' && now - s.since >= timeoutMs) {
        this.setState(host, 'offline', `not seen in the first ${host.spec.timeout} s`);
      }
      const interval = timeoutMs / 2;
      let due =
        s.lastPing === 0 ||
        (s.state === 'online' && now - s.lastSeen > interval && now - s.lastPing >= interval) ||
        // Confirm a wake: on a switched LAN the woken host's answers to the requester are
        // unicast and never reach us, but its echo replies to our pings do.
        (s.state === 'waking' && now - s.lastPing >= Math.min(WAKING_PING_INTERVAL_MS, interval));
      if (
        host.spec.proxy &&
        this.proxyAvailable &&
        (s.state === 'offline' || s.state === 'waking') &&
        this.proxy.consider(host, this.addresses(host), now)
      ) {
        due = true; // "timeout passed and an echo went unanswered": the echo goes with the probes
      }
      if (due) {
        s.lastPing = now;
        toPing.push(host);
      }
    }
    this.proxy.tick(now);
    return toPing;
  }

  private setState(host: HostEntry, to: HostState, why: string): void {
    const from = host.status.state;
    if (from === to) return;
    host.status.state = to;
    this.listener.stateChanged(host, from, to, why);
  }
}
