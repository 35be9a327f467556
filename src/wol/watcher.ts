import { invalidArgument, VigilError } from '../core/errors';
import { formatIpv4, parseIpv4, rangeContains, type AddressRange } from './addresses';
import { parseFrame, type Frame } from './frames';

/**
 * The Wake-on-LAN watcher as a pure state machine: frames and clock ticks in, decisions out.
 * No sockets, no bus, no timers: the service feeds it and acts on what it decides, which
 * keeps every rule testable with crafted frames and a hand-driven clock.
 */

export type HostState = 'unknown' | 'online' | 'offline' | 'waking';

export interface HostSpec {
  readonly name: string;
  /** Normalized lower-case `aa:bb:cc:dd:ee:ff`. */
  readonly mac: string;
  readonly ip: string;
  readonly interface: string;
  /** Requesters allowed to cause a wake; empty means anyone. */
  readonly onlyFrom: readonly AddressRange[];
  /** Seconds of silence after which the host is offline (and a wake gives up). */
  readonly timeout: number;
  /** Seconds after a wake during which ARP requests wake nothing. */
  readonly cooldown: number;
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
  lastPing: number;
  /** When watching started, for the unknown → offline timeout. */
  readonly since: number;
}

export interface Host {
  readonly spec: HostSpec;
  readonly status: HostStatus;
}

export type WakeReason = 'arp' | 'manual';

export interface WakeDecision {
  readonly host: Host;
  readonly interface: string;
  readonly requesterIp: string;
  readonly requesterMac: string;
  readonly reason: WakeReason;
}

export type IgnoreReason =
  'reply' | 'probe' | 'gratuitous' | 'self' | 'own-probe' | 'not-allowed' | 'awake' | 'cooldown';

export type FrameOutcome =
  | { readonly kind: 'malformed'; readonly reason: string }
  | { readonly kind: 'ignored'; readonly reason: IgnoreReason; readonly host: Host }
  | { readonly kind: 'wake'; readonly decision: WakeDecision }
  /** Not about any watched host (or only liveness was noted). */
  | { readonly kind: 'none' };

export interface WatcherListener {
  wake(decision: WakeDecision): void;
  stateChanged(host: Host, from: HostState, to: HostState, why: string): void;
  seen(host: Host): void;
}

/** Our own ping of a host makes the kernel ARP for it for about 3 s (mcast_solicit × 1 s). */
export const OWN_PROBE_WINDOW_MS = 5000;
/** How often a waking host is pinged to see it come up. */
export const WAKING_PING_INTERVAL_MS = 1000;
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;

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

function checkedIp(spec: HostSpec): number {
  validateTiming(spec.timeout, spec.cooldown);
  const ipValue = parseIpv4(spec.ip);
  if (ipValue === undefined) throw invalidArgument(`invalid IPv4 address "${spec.ip}"`);
  return ipValue;
}

interface HostEntry extends Host {
  // Mutable for updateHosts: a reloaded host keeps its entry, which its bus object holds.
  spec: HostSpec;
  ipValue: number;
  readonly status: HostStatus;
}

export class WolWatcher {
  framesSeen = 0;
  framesMalformed = 0;
  readonly ignored = new Map<IgnoreReason, number>();
  private readonly hosts = new Map<string, HostEntry>();
  private readonly byIp = new Map<string, HostEntry>();
  private readonly byMac = new Map<string, HostEntry[]>();
  private readonly localAddresses = new Map<string, ReadonlySet<number>>();

  constructor(
    private readonly listener: WatcherListener,
    private readonly now: () => number = Date.now,
  ) {}

  /** Add a host (validated by the caller); duplicates of name, or IP on the same interface, are refused. */
  addHost(spec: HostSpec): Host {
    if (this.hosts.has(spec.name)) throw invalidArgument(`a host named "${spec.name}" exists`);
    const ipValue = checkedIp(spec);
    this.refuseIpClash(spec, ipValue);
    const entry: HostEntry = {
      spec,
      ipValue,
      status: {
        state: 'unknown',
        lastSeen: 0,
        lastWake: 0,
        wakeCount: 0,
        lastWakeDuration: 0,
        lastPing: 0,
        since: this.now(),
      },
    };
    this.hosts.set(spec.name, entry);
    this.index(entry);
    return entry;
  }

  /**
   * Change hosts' settings in place (a config reload): each keeps its name, MAC, state and
   * counters, and the object its bus object reads. All or nothing: an IP that would clash
   * after the change refuses the lot, so two hosts may swap addresses.
   */
  updateHosts(specs: readonly HostSpec[]): Host[] {
    const updates = specs.map((spec) => {
      const entry = this.hosts.get(spec.name);
      if (!entry || entry.spec.mac !== spec.mac) {
        throw invalidArgument(`no host "${spec.name}" with MAC ${spec.mac} to update`);
      }
      return { entry, spec, ipValue: checkedIp(spec) };
    });
    for (const u of updates) this.unindex(u.entry);
    try {
      for (const [i, u] of updates.entries()) {
        this.refuseIpClash(u.spec, u.ipValue);
        const twin = updates
          .slice(0, i)
          .find((o) => o.spec.interface === u.spec.interface && o.ipValue === u.ipValue);
        if (twin) throw invalidArgument(`${u.spec.ip} is given to "${twin.spec.name}" too`);
      }
    } catch (e) {
      for (const u of updates) this.index(u.entry);
      throw e;
    }
    for (const u of updates) {
      u.entry.spec = u.spec;
      u.entry.ipValue = u.ipValue;
      this.index(u.entry);
    }
    return updates.map((u) => u.entry);
  }

  private refuseIpClash(spec: HostSpec, ipValue: number): void {
    const clash = this.byIp.get(`${spec.interface}|${ipValue}`);
    if (clash) {
      throw invalidArgument(
        `${spec.ip} on ${spec.interface} is already watched as "${clash.spec.name}"`,
      );
    }
  }

  private index(entry: HostEntry): void {
    this.byIp.set(`${entry.spec.interface}|${entry.ipValue}`, entry);
    const macKey = `${entry.spec.interface}|${entry.spec.mac}`;
    this.byMac.set(macKey, [...(this.byMac.get(macKey) ?? []), entry]);
  }

  private unindex(entry: HostEntry): void {
    this.byIp.delete(`${entry.spec.interface}|${entry.ipValue}`);
    const macKey = `${entry.spec.interface}|${entry.spec.mac}`;
    const rest = (this.byMac.get(macKey) ?? []).filter((e) => e !== entry);
    if (rest.length) this.byMac.set(macKey, rest);
    else this.byMac.delete(macKey);
  }

  /** Restore counters kept across restarts (wake count, last wake). */
  restoreStatus(
    name: string,
    saved: Partial<Pick<HostStatus, 'lastWake' | 'wakeCount' | 'lastWakeDuration'>>,
  ): void {
    const entry = this.hosts.get(name);
    if (!entry) return;
    Object.assign(entry.status, saved);
  }

  removeHost(name: string): Host {
    const entry = this.hosts.get(name);
    if (!entry) throw new VigilError('NotFound', `no host named "${name}"`);
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

  /** This machine's own IPv4 addresses on an interface (to recognise ARP caused by our pings). */
  setLocalAddresses(iface: string, addresses: readonly string[]): void {
    const values = addresses.map((a) => parseIpv4(a)).filter((v): v is number => v !== undefined);
    this.localAddresses.set(iface, new Set(values));
  }

  /** One captured frame from `iface`. Counts it, notes liveness, decides whether to wake. */
  handleFrame(iface: string, buf: Buffer, length = buf.length, truncated = false): FrameOutcome {
    this.framesSeen++;
    const frame = parseFrame(buf, length, truncated);
    return this.handleParsed(iface, frame);
  }

  handleParsed(iface: string, frame: Frame): FrameOutcome {
    if (frame.kind === 'malformed') {
      this.framesMalformed++;
      return { kind: 'malformed', reason: frame.reason };
    }
    const now = this.now();
    const senders = this.byMac.get(`${iface}|${frame.sourceMac}`);
    if (senders) for (const host of senders) this.markSeen(host, now);
    if (frame.kind !== 'arp') return { kind: 'none' };
    if (frame.senderMac !== frame.sourceMac) {
      const arpSenders = this.byMac.get(`${iface}|${frame.senderMac}`);
      if (arpSenders) for (const host of arpSenders) this.markSeen(host, now);
    }

    const host = this.byIp.get(`${iface}|${frame.targetIp}`);
    if (!host) return { kind: 'none' };
    const reason = this.ignoreReason(iface, frame, host, now);
    if (reason) {
      this.ignored.set(reason, (this.ignored.get(reason) ?? 0) + 1);
      return { kind: 'ignored', reason, host };
    }
    const decision = this.wake(host, now, {
      interface: iface,
      requesterIp: formatIpv4(frame.senderIp),
      requesterMac: frame.senderMac,
      reason: 'arp',
    });
    return { kind: 'wake', decision };
  }

  private ignoreReason(
    iface: string,
    frame: Extract<Frame, { kind: 'arp' }>,
    host: HostEntry,
    now: number,
  ): IgnoreReason | undefined {
    if (frame.op !== 'request') return 'reply';
    if (frame.senderIp === 0) return 'probe';
    if (frame.senderIp === frame.targetIp) return 'gratuitous';
    if (
      frame.senderMac === host.spec.mac ||
      frame.sourceMac === host.spec.mac ||
      frame.senderIp === host.ipValue
    ) {
      return 'self';
    }
    if (
      host.status.lastPing !== 0 &&
      now - host.status.lastPing < OWN_PROBE_WINDOW_MS &&
      this.localAddresses.get(iface)?.has(frame.senderIp)
    ) {
      return 'own-probe';
    }
    const onlyFrom = host.spec.onlyFrom;
    if (onlyFrom.length && !onlyFrom.some((r) => rangeContains(r, frame.senderIp))) {
      return 'not-allowed';
    }
    if (host.status.state !== 'offline' && host.status.state !== 'waking') return 'awake';
    if (host.status.lastWake !== 0 && now - host.status.lastWake < host.spec.cooldown * 1000) {
      return 'cooldown';
    }
    return undefined;
  }

  /** A manual wake (D-Bus `Wake`): always sends, whatever the state and cooldown. */
  wakeManually(name: string): WakeDecision {
    const host = this.hosts.get(name);
    if (!host) throw new VigilError('NotFound', `no host named "${name}"`);
    return this.wake(host, this.now(), {
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
    const decision: WakeDecision = { host, ...how };
    this.listener.wake(decision);
    // An online host woken by hand stays online; anything else is now waiting to wake up.
    if (host.status.state !== 'online') {
      this.setState(
        host,
        'waking',
        how.reason === 'manual' ? 'woken on request' : `ARP from ${how.requesterIp}`,
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

  noteAliveByIp(iface: string | undefined, ip: string): void {
    const value = parseIpv4(ip);
    if (value === undefined) return;
    for (const host of this.hosts.values()) {
      if (host.ipValue === value && (iface === undefined || host.spec.interface === iface)) {
        this.markSeen(host, this.now());
      }
    }
  }

  /**
   * Advance the clock: time hosts out, and return the hosts to ping now. As in wakeupd, a host
   * is pinged once at first, then while online only when what we know of it is older than
   * half its timeout (and not more often than that); while waking, every second.
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
      const due =
        s.lastPing === 0 ||
        (s.state === 'online' && now - s.lastSeen > interval && now - s.lastPing >= interval) ||
        // Confirm a wake: on a switched LAN the woken host's answers to the requester are
        // unicast and never reach us, but its echo replies to our pings do.
        (s.state === 'waking' && now - s.lastPing >= Math.min(WAKING_PING_INTERVAL_MS, interval));
      if (due) {
        s.lastPing = now;
        toPing.push(host);
      }
    }
    return toPing;
  }

  private setState(host: HostEntry, to: HostState, why: string): void {
    const from = host.status.state;
    if (from === to) return;
    host.status.state = to;
    this.listener.stateChanged(host, from, to, why);
  }
}
