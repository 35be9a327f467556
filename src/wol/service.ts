import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { StateDatabase } from '../core/database';
import { invalidArgument, messageOf, VigilError } from '../core/errors';
import {
  formatIpv6,
  interfaceAddresses,
  isLinkLocal6,
  isOnLink,
  normalizeMac,
  parseIpv6,
  parseMac,
  solicitedNode,
} from './addresses';
import { makeHostSpec, type HostOptions, type ResolveEnvironment } from './config';
import { WakeHistory } from './history';
import {
  captureFilter,
  GroupMembership,
  hasNetRawCapability,
  IcmpPinger,
  MagicSender,
  PcapCapture,
  readInterface,
  type Capture,
  type FrameHandler,
} from './io';
import type { ProxyClaim } from './proxy';
import { WolStore, type WakeHistoryRow } from './store';
import {
  hostIp6,
  WolWatcher,
  type Host,
  type HostSpec,
  type HostState,
  type LocalInterface,
  type WakeDecision,
} from './watcher';

/** What the service logs through (winston's logger has this shape). */
export interface WolLogger {
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

/** The kernel-facing parts, replaceable so the service runs unprivileged in unit tests. */
export interface WolIo {
  canCapture(): boolean;
  openCapture(iface: string, filter: string, onFrame: FrameHandler): Capture;
  createSender(): MagicSender;
  createPinger(
    onReply: (ip: string) => void,
    onError: (message: string) => void,
    family: 4 | 6,
  ): Pinger | undefined;
  /** This machine on an interface: MAC, addresses, forwarding (default: io.readInterface). */
  readInterface?(iface: string): LocalInterface;
  /** IPv6 multicast group membership (default: a kernel socket; none in unit tests). */
  createMembership?(): GroupMembership | undefined;
}

export interface Pinger {
  ping(ip: string): void;
  close(): void;
}

export const kernelIo: WolIo = {
  canCapture: () => hasNetRawCapability(),
  openCapture: (iface, filter, onFrame) => new PcapCapture(iface, filter, onFrame),
  createSender: () => new MagicSender(),
  createPinger: (onReply, onError, family) => new IcmpPinger(onReply, onError, family),
  readInterface: (iface) => readInterface(iface),
  createMembership: () => new GroupMembership(),
};

export interface WolServiceOptions {
  readonly log: WolLogger;
  /** Hosts from the config file (`hostsFromConfig`). */
  readonly configHosts?: readonly HostSpec[];
  /** Where hosts added over D-Bus and wake counters persist; without it nothing persists. */
  readonly db?: StateDatabase;
  /** Also send the magic packet as a raw Ethernet frame of type 0x0842 (like etherwake). */
  readonly sendEthernetFrame?: boolean;
  /** Interfaces to watch (`[wol] interfaces`); empty means those of the hosts. */
  readonly interfaces?: readonly string[];
  readonly tickMs?: number;
  readonly now?: () => number;
  readonly io?: WolIo;
  readonly env?: ResolveEnvironment;
  /** Rows kept in the wake history (`[wol] wake_history`). */
  readonly wakeHistoryLimit?: number;
}

/** What a config reload did to the hosts, by name (a changed MAC counts as changed). */
export interface ConfigHostsChange {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

/** The Host properties that differ between two settings of one host. */
function changedHostProperties(from: HostSpec, to: HostSpec): HostProperty[] {
  const props: HostProperty[] = [];
  if (from.ip !== to.ip) props.push('Ip');
  if (from.interface !== to.interface) props.push('Interface');
  const ranges = (s: HostSpec): string => s.onlyFrom.map((r) => r.text).join(',');
  if (ranges(from) !== ranges(to)) props.push('OnlyFrom');
  if (from.timeout !== to.timeout) props.push('Timeout');
  if (from.cooldown !== to.cooldown) props.push('Cooldown');
  if (from.ip6.join() !== to.ip6.join()) props.push('Ip6');
  const ignored = (s: HostSpec): string => s.ignoreFrom.map((r) => r.text).join(',');
  if (ignored(from) !== ignored(to)) props.push('IgnoreFrom');
  if (from.proxy !== to.proxy) props.push('Proxy');
  const ports = (s: HostSpec): string => s.wakePorts.map((p) => `${p.protocol}/${p.port}`).join();
  if (ports(from) !== ports(to)) props.push('WakePorts');
  return props;
}

/** Properties of the WakeOnLan object whose changes are announced. */
export type ServiceProperty = 'Interfaces' | 'WakesSent' | 'Available';
/** Properties of a Host object. */
export type HostProperty =
  | 'State'
  | 'LastSeen'
  | 'LastWake'
  | 'WakeCount'
  | 'LastWakeDuration'
  | 'LastWakeReason'
  | 'Ip6'
  | 'Proxying'
  | 'Ip'
  | 'Interface'
  | 'OnlyFrom'
  | 'Timeout'
  | 'Cooldown'
  | 'IgnoreFrom'
  | 'Proxy'
  | 'WakePorts';

export interface WakeSentEvent {
  readonly name: string;
  readonly mac: string;
  readonly requesterIp: string;
  readonly reason: string;
}

interface ServiceEvents {
  hostAdded: [Host];
  hostRemoved: [Host];
  hostChanged: [Host, HostProperty[]];
  changed: [ServiceProperty[]];
  wakeSent: [WakeSentEvent];
}

/**
 * The Wake-on-LAN watcher as the daemon runs it: the pure `WolWatcher` fed by captures,
 * a clock tick and the pinger; wakes sent, logged, counted and persisted. The bus layer
 * listens to its events and calls its methods; it never touches sockets itself.
 */
export class WolService extends EventEmitter<ServiceEvents> {
  readonly watcher: WolWatcher;
  wakesSent = 0;
  available = false;
  private readonly log: WolLogger;
  private readonly store: WolStore | undefined;
  private readonly io: WolIo;
  private readonly now: () => number;
  private readonly captures = new Map<string, Capture>();
  private readonly lastSeenAnnounced = new Map<string, number>();
  private readonly history: WakeHistory;
  private readonly interfaceInfo = new Map<string, LocalInterface>();
  private sender: MagicSender | undefined;
  private pinger: Pinger | undefined;
  private pinger6: Pinger | undefined;
  private membership: GroupMembership | undefined;
  private readonly groupErrors = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private lastAddressRefresh = 0;
  /** Claims a previous run left that could not be handed back yet (no capture on their interface). */
  private unreturnedClaims: ProxyClaim[] = [];

  constructor(private readonly options: WolServiceOptions) {
    super();
    this.log = options.log;
    this.io = options.io ?? kernelIo;
    this.now = options.now ?? Date.now;
    this.store = options.db ? new WolStore(options.db) : undefined;
    this.history = new WakeHistory(this.store, options.wakeHistoryLimit);
    this.watcher = new WolWatcher(
      {
        wake: (d) => this.onWakeDecision(d),
        stateChanged: (h, from, to, why) => this.onStateChanged(h, from, to, why),
        seen: (h) => this.onSeen(h),
        decided: (record) => this.history.record(record),
        learned: (h) => this.onLearned(h),
        proxy: {
          send: (iface, frame) => this.sendFrame(iface, frame),
          claimed: (claim) => this.store?.saveClaim(claim, this.now()),
          released: (claim) => this.store?.deleteClaim(claim),
          proxyingChanged: (h) => this.emit('hostChanged', h, ['Proxying']),
          log: (level, message) => this.log[level](message),
        },
      },
      this.now,
    );
  }

  async start(): Promise<void> {
    for (const spec of this.options.configHosts ?? []) this.addWatched(spec);
    for (const stored of this.store?.loadHosts() ?? []) {
      if (this.watcher.host(stored.name)) {
        this.log.warning(
          `Wake-on-LAN: host "${stored.name}" added over D-Bus is also in the config file; the config wins`,
        );
        continue;
      }
      try {
        const spec = makeHostSpec(
          stored.name,
          stored.mac,
          stored.ip,
          stored,
          'bus',
          this.options.env,
        );
        this.addWatched(spec);
      } catch (e) {
        this.log.error(`Wake-on-LAN: cannot restore host "${stored.name}": ${messageOf(e)}`);
      }
    }
    this.sender = this.io.createSender();
    await this.sender.start();
    this.available = this.io.canCapture();
    this.watcher.proxyAvailable = this.available;
    if (!this.available) {
      this.log.warning(
        'Wake-on-LAN watcher unavailable: capturing ARP needs CAP_NET_RAW; ' +
          'hosts can be managed and woken by hand, but nothing is woken automatically',
      );
      this.warnProxyUnavailable();
    } else {
      this.pinger = this.openPinger(4);
      this.pinger6 = this.openPinger(6);
      const membership = this.io.createMembership?.();
      try {
        await membership?.start();
        this.membership = membership;
      } catch (e) {
        this.log.warning(`Wake-on-LAN: no IPv6 multicast membership: ${messageOf(e)}`);
      }
      this.syncCaptures();
      this.log.info(
        `Wake-on-LAN watcher watching ${this.watcher.list().length} host(s) on ` +
          `${this.interfaces.join(', ') || 'no interface yet'}`,
      );
    }
    // A previous run that died while proxying left addresses pointing at this machine.
    this.unreturnedClaims = this.store?.loadClaims() ?? [];
    this.returnClaims(true);
    this.emit('changed', ['Available', 'Interfaces']);
    this.syncTimer();
    this.tick();
  }

  /** Tick only while there are hosts to time out or ping: an idle daemon must not poll. */
  private syncTimer(): void {
    const wanted = this.watcher.list().length > 0;
    if (wanted && !this.timer) {
      this.timer = setInterval(() => this.tick(), this.options.tickMs ?? 500);
      this.timer.unref();
    } else if (!wanted && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private openPinger(family: 4 | 6): Pinger | undefined {
    const name = family === 4 ? 'ICMP' : 'ICMPv6';
    try {
      return this.io.createPinger(
        (ip) => this.watcher.noteAliveByIp(undefined, ip),
        (message) => this.log.warning(`Wake-on-LAN: ${name} pinger: ${message}`),
        family,
      );
    } catch (e) {
      this.log.warning(`Wake-on-LAN: no ${name} liveness probe: ${messageOf(e)}`);
      return undefined;
    }
  }

  private warnProxyUnavailable(host?: Host): void {
    if (this.available) return;
    const proxied = host ? [host] : this.watcher.list().filter((h) => h.spec.proxy);
    if (proxied.length === 0) return;
    this.log.warning(
      `Wake-on-LAN sleep proxy unavailable: answering for ${proxied.map((h) => h.spec.name).join(', ')} ` +
        'needs CAP_NET_RAW; they are woken as hosts without proxy would be (by hand only)',
    );
  }

  /**
   * Hand back what a previous run took over, on every interface that can send now; the rest
   * waits for a capture on its interface (said once, at start).
   */
  private returnClaims(atStart = false): void {
    if (this.unreturnedClaims.length === 0) return;
    const ready = this.unreturnedClaims.filter((c) => this.captures.has(c.interface));
    const waiting = this.unreturnedClaims.filter((c) => !this.captures.has(c.interface));
    const left = this.watcher.recoverClaims(ready);
    this.unreturnedClaims = [...waiting, ...left];
    if (!atStart) return;
    for (const c of this.unreturnedClaims) {
      this.log.warning(
        `Wake-on-LAN: cannot hand ${c.address} back to ${c.hostName} yet: no capture on ${c.interface}`,
      );
    }
  }

  private sendFrame(iface: string, frame: Buffer): void {
    const capture = this.captures.get(iface);
    if (!capture) return;
    try {
      capture.send(frame);
    } catch (e) {
      this.log.debug(`Wake-on-LAN: cannot send on ${iface}: ${messageOf(e)}`);
    }
  }

  /** The wake history, newest first (0: everything kept). */
  getWakeHistory(limit: number): WakeHistoryRow[] {
    return this.history.list(this.now(), limit);
  }

  /**
   * Stop: hand every proxied address back first (the announcements go twice, a little apart,
   * within the daemon's stop budget), then close the sockets.
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const repeats = this.watcher.stopProxy();
    if (repeats.length > 0) {
      await new Promise((r) => setTimeout(r, 200));
      for (const { iface, frame } of repeats) this.sendFrame(iface, frame);
    }
    try {
      this.history.flush(this.now());
    } catch (e) {
      this.log.error(`Wake-on-LAN: cannot write the wake history: ${messageOf(e)}`);
    }
    for (const c of this.captures.values()) c.close();
    this.captures.clear();
    this.pinger?.close();
    this.pinger = undefined;
    this.pinger6?.close();
    this.pinger6 = undefined;
    this.membership?.close();
    this.membership = undefined;
    this.sender?.close();
    this.sender = undefined;
  }

  /** The interfaces watched for ARP: the configured ones, or else those of the hosts. */
  get interfaces(): string[] {
    const configured = this.options.interfaces ?? [];
    return configured.length ? [...configured].sort() : this.watcher.interfaces();
  }

  get framesSeen(): number {
    return this.watcher.framesSeen;
  }

  get framesMalformed(): number {
    return this.watcher.framesMalformed;
  }

  listHosts(): Host[] {
    return this.watcher.list();
  }

  host(name: string): Host {
    const host = this.watcher.host(name);
    if (!host) throw new VigilError('NotFound', `no host named "${name}"`);
    return host;
  }

  /** AddHost: validate, watch, persist. */
  addHost(name: string, mac: string, ip: string, options: HostOptions): Host {
    const spec = makeHostSpec(name, mac, ip, options, 'bus', this.options.env);
    const macClash = this.watcher.hostsByMac(spec.mac)[0];
    if (macClash)
      throw invalidArgument(`${spec.mac} is already watched as "${macClash.spec.name}"`);
    const host = this.addWatched(spec);
    this.store?.saveHost(spec, this.now());
    if (this.sender) this.syncTimer(); // started: the sender exists from start() to stop()
    this.log.info(
      `Wake-on-LAN: watching ${spec.name} (${spec.mac}, ${spec.ip} on ${spec.interface}), added over D-Bus`,
    );
    return host;
  }

  removeHost(name: string): Host {
    const host = this.host(name);
    if (host.spec.source === 'config') {
      throw new VigilError(
        'NotSupported',
        `host "${name}" comes from the config file; remove it there and reload`,
      );
    }
    const interfacesBefore = this.interfaces.join(',');
    this.watcher.removeHost(name);
    this.store?.deleteHost(name);
    this.lastSeenAnnounced.delete(name);
    this.log.info(`Wake-on-LAN: no longer watching ${name}`);
    this.emit('hostRemoved', host);
    this.syncCaptures();
    this.syncTimer();
    if (this.interfaces.join(',') !== interfacesBefore) this.emit('changed', ['Interfaces']);
    return host;
  }

  /**
   * A config reload's hosts. Checks `specs` against everything that stays (hosts added over
   * D-Bus, the watched interfaces) and returns the change to make, so that a refused reload
   * changes nothing. When applied: hosts gone from the file stop being watched, new ones are
   * watched, the others change in place and announce what changed. A changed MAC makes a new
   * host (a Host's `Mac` is const); a D-Bus host of a name the file now uses gives way, as at
   * start.
   */
  prepareConfigHosts(specs: readonly HostSpec[]): () => ConfigHostsChange {
    const wanted = new Map(specs.map((s) => [s.name, s]));
    const current = new Map(this.watcher.list().map((h) => [h.spec.name, h]));
    // A D-Bus host stays unless the file takes its name; a file host stays if its MAC does.
    const stays = (h: Host): boolean =>
      h.spec.source === 'bus'
        ? !wanted.has(h.spec.name)
        : wanted.get(h.spec.name)?.mac === h.spec.mac;
    const gone = [...current.values()].filter(
      (h) => !stays(h) && (h.spec.source === 'config' || wanted.has(h.spec.name)),
    );
    const added = specs.filter(
      (s) => !current.has(s.name) || gone.includes(current.get(s.name) as Host),
    );
    const changed = specs.flatMap((spec) => {
      const host = current.get(spec.name);
      const props = host && stays(host) ? changedHostProperties(host.spec, spec) : [];
      return props.length > 0 ? [{ spec, props }] : [];
    });
    // Everything that will be watched, tried on a scratch watcher first: a clash refuses the lot.
    const trial = new WolWatcher({ wake: () => {}, stateChanged: () => {}, seen: () => {} });
    for (const h of current.values())
      if (h.spec.source === 'bus' && stays(h)) trial.addHost(h.spec);
    for (const spec of specs) {
      this.refuseUnwatchedInterface(spec);
      trial.addHost(spec);
    }
    return () => {
      const interfacesBefore = this.interfaces.join(',');
      for (const host of gone) {
        if (host.spec.source === 'bus') {
          this.log.warning(
            `Wake-on-LAN: host "${host.spec.name}" added over D-Bus is now also in the config file; the config wins`,
          );
        }
        this.watcher.removeHost(host.spec.name);
        this.lastSeenAnnounced.delete(host.spec.name);
        this.emit('hostRemoved', host);
      }
      const updated = this.watcher.updateHosts(changed.map((c) => c.spec));
      updated.forEach((host, i) => this.emit('hostChanged', host, changed[i].props));
      this.syncCaptures();
      if (this.interfaces.join(',') !== interfacesBefore) this.emit('changed', ['Interfaces']);
      for (const spec of added) this.addWatched(spec);
      this.syncTimer();
      return {
        added: added.filter((s) => !current.has(s.name)).map((s) => s.name),
        removed: gone.filter((h) => !wanted.has(h.spec.name)).map((h) => h.spec.name),
        changed: [
          ...changed.map((c) => c.spec.name),
          ...added.filter((s) => current.has(s.name)).map((s) => s.name),
        ],
      };
    };
  }

  /**
   * Manual wake by host name or MAC. A MAC nobody watches is woken on every watched interface
   * (or every interface with IPv4 when none is watched).
   */
  async wake(nameOrMac: string): Promise<void> {
    const byName = this.watcher.host(nameOrMac);
    if (byName) {
      const decision = this.watcher.wakeManually(byName.spec.name);
      await this.pending.get(decision)?.catch(() => undefined);
      this.throwIfFailed(decision);
      return;
    }
    const macBytes = parseMac(nameOrMac);
    if (!macBytes) {
      if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(nameOrMac)) {
        throw new VigilError('NotFound', `no host named "${nameOrMac}"`);
      }
      throw invalidArgument(`"${nameOrMac}" is neither a watched host name nor a MAC address`);
    }
    const mac = normalizeMac(nameOrMac);
    const known = this.watcher.hostsByMac(mac)[0];
    if (known) return this.wake(known.spec.name);
    const sender = this.requireSender();
    let targets = this.interfaces;
    if (targets.length === 0) {
      targets = Object.keys(os.networkInterfaces()).filter(
        (i) => i !== 'lo' && interfaceAddresses(i).length > 0,
      );
    }
    if (targets.length === 0)
      throw new VigilError('Failed', 'no interface to send the magic packet on');
    const errors: string[] = [];
    for (const iface of targets) {
      try {
        await sender.send(mac, iface, this.ethernetVia(iface));
        this.countWake({ name: '', mac, requesterIp: '', reason: 'manual' }, iface);
      } catch (e) {
        errors.push(`${iface}: ${messageOf(e)}`);
      }
    }
    if (errors.length === targets.length) {
      throw new VigilError('Failed', `cannot send the magic packet: ${errors.join('; ')}`);
    }
  }

  private readonly pending = new Map<WakeDecision, Promise<void>>();
  private readonly failed = new Map<WakeDecision, string>();

  private throwIfFailed(decision: WakeDecision): void {
    const error = this.failed.get(decision);
    this.failed.delete(decision);
    if (error) throw new VigilError('Failed', `cannot send the magic packet: ${error}`);
  }

  private requireSender(): MagicSender {
    if (!this.sender) throw new VigilError('Failed', 'the Wake-on-LAN watcher is not started');
    return this.sender;
  }

  /** The raw 0x0842 frame goes out when configured, or when there is no IPv4 broadcast to use. */
  private ethernetVia(iface: string): Capture | undefined {
    const wanted = this.options.sendEthernetFrame || interfaceAddresses(iface).length === 0;
    return wanted ? this.captures.get(iface) : undefined;
  }

  private refuseUnwatchedInterface(spec: HostSpec): void {
    const configured = this.options.interfaces ?? [];
    if (configured.length && !configured.includes(spec.interface)) {
      throw invalidArgument(
        `host "${spec.name}" is on ${spec.interface}, which is not watched (watched: ${configured.join(', ')})`,
      );
    }
  }

  private addWatched(spec: HostSpec): Host {
    this.refuseUnwatchedInterface(spec);
    const interfacesBefore = this.interfaces.join(',');
    const host = this.watcher.addHost(spec);
    const saved = this.store?.loadStats(spec.name);
    const learned = this.store?.loadLearned(spec.name, spec.mac) ?? [];
    if (saved || learned.length) this.watcher.restoreStatus(spec.name, saved ?? {}, learned);
    this.emit('hostAdded', host);
    if (this.sender) this.warnProxyUnavailable(host);
    if (this.sender) this.syncCaptures();
    if (this.interfaces.join(',') !== interfacesBefore) this.emit('changed', ['Interfaces']);
    return host;
  }

  /** Open, re-filter or close captures so each watched interface has one with the right filter. */
  private syncCaptures(): void {
    if (!this.available) return;
    const wanted = new Map<string, string[]>(this.interfaces.map((i) => [i, []]));
    const proxied = new Map<string, string[]>();
    for (const h of this.watcher.list()) {
      const iface = h.spec.interface;
      wanted.set(iface, [...(wanted.get(iface) ?? []), h.spec.mac]);
      if (h.spec.proxy) {
        proxied.set(iface, [...(proxied.get(iface) ?? []), h.spec.ip, ...hostIp6(h)]);
      }
    }
    for (const [iface, capture] of this.captures) {
      if (!wanted.has(iface)) {
        capture.close();
        this.captures.delete(iface);
      }
    }
    for (const [iface, macs] of wanted) {
      if (!this.interfaceInfo.has(iface)) this.refreshInterface(iface);
      const filter = captureFilter(macs, this.interfaceInfo.get(iface)?.mac, proxied.get(iface));
      try {
        const existing = this.captures.get(iface);
        if (existing) existing.setFilter(filter);
        else {
          this.captures.set(
            iface,
            this.io.openCapture(iface, filter, (buf, length, truncated) =>
              this.watcher.handleFrame(iface, buf, length, truncated),
            ),
          );
        }
      } catch (e) {
        this.log.error(`Wake-on-LAN: cannot capture on ${iface}: ${messageOf(e)}`);
      }
    }
    if (this.unreturnedClaims.length > 0) this.returnClaims();
    this.syncGroups();
  }

  /** Join the solicited-node group of every watched IPv6 address on its host's interface. */
  private syncGroups(): void {
    if (!this.membership) return;
    const wanted = new Map<string, string[]>();
    for (const h of this.watcher.list()) {
      const groups = wanted.get(h.spec.interface) ?? [];
      for (const text of hostIp6(h)) {
        const bytes = parseIpv6(text);
        if (bytes) groups.push(formatIpv6(solicitedNode(bytes)));
      }
      wanted.set(h.spec.interface, [...new Set(groups)]);
    }
    for (const error of this.membership.sync(wanted)) {
      // Said once: an interface without IPv6 fails every time.
      if (this.groupErrors.has(error)) continue;
      this.groupErrors.add(error);
      this.log.debug(`Wake-on-LAN: cannot join ${error}`);
    }
  }

  /** Re-read this machine on `iface`; a new MAC changes the capture filter. */
  private refreshInterface(iface: string): boolean {
    let info: LocalInterface;
    try {
      info = (this.io.readInterface ?? readInterface)(iface);
    } catch (e) {
      this.log.debug(`Wake-on-LAN: cannot read ${iface}: ${messageOf(e)}`);
      return false;
    }
    const macChanged = this.interfaceInfo.get(iface)?.mac !== info.mac;
    this.interfaceInfo.set(iface, info);
    this.watcher.setInterface(iface, info);
    return macChanged;
  }

  private tick(): void {
    const now = this.now();
    if (now - this.lastAddressRefresh > 10_000) {
      this.lastAddressRefresh = now;
      let macChanged = false;
      for (const iface of this.captures.keys())
        macChanged = this.refreshInterface(iface) || macChanged;
      if (macChanged) this.syncCaptures();
    }
    const toPing = this.watcher.tick();
    for (const host of toPing) this.ping(host);
    try {
      this.history.flush(now);
    } catch (e) {
      this.log.error(`Wake-on-LAN: cannot write the wake history: ${messageOf(e)}`);
    }
  }

  /**
   * Echo to the host's IPv4 address and to up to two of its IPv6 addresses (link-local first).
   * A host watched on an interface lives on that interface's LAN; an echo to an address that
   * is not on-link there would be routed elsewhere (possibly off this LAN), so it is skipped.
   */
  private ping(host: Host): void {
    const iface = host.spec.interface;
    const targets: [Pinger | undefined, string][] = [];
    if (isOnLink(iface, host.spec.ip)) targets.push([this.pinger, host.spec.ip]);
    else this.log.debug(`Wake-on-LAN: not pinging ${host.spec.ip}: not on ${iface}'s subnet`);
    const own = this.interfaceInfo.get(iface)?.ipv6 ?? [];
    const v6 = hostIp6(host)
      .map((text) => ({ text, bytes: parseIpv6(text) }))
      .filter((a): a is { text: string; bytes: Buffer } => a.bytes !== undefined)
      .filter(
        (a) => isLinkLocal6(a.bytes) || own.some((o) => sameNetwork(o.bytes, a.bytes, o.prefix)),
      )
      .sort((a, b) => Number(isLinkLocal6(b.bytes)) - Number(isLinkLocal6(a.bytes)))
      .slice(0, 2);
    if (own.length > 0) {
      for (const a of v6) {
        targets.push([this.pinger6, isLinkLocal6(a.bytes) ? `${a.text}%${iface}` : a.text]);
      }
    }
    for (const [pinger, target] of targets) {
      if (!pinger) continue;
      try {
        pinger.ping(target);
      } catch (e) {
        this.log.debug(`Wake-on-LAN: ping ${target}: ${messageOf(e)}`);
      }
    }
  }

  private onLearned(host: Host): void {
    this.log.info(
      `Wake-on-LAN: ${host.spec.name} uses ${host.status.learnedIp6.join(', ')} (learned from its traffic)`,
    );
    this.store?.saveLearned(host.spec.name, host.spec.mac, this.watcher.learnedAddresses(host));
    this.emit('hostChanged', host, ['Ip6']);
    if (host.spec.proxy) this.syncCaptures();
    else this.syncGroups();
  }

  private onWakeDecision(decision: WakeDecision): void {
    const { host } = decision;
    this.emit('hostChanged', host, ['LastWake', 'WakeCount', 'LastWakeDuration', 'LastWakeReason']);
    const promise = this.sendWake(decision).finally(() => this.pending.delete(decision));
    this.pending.set(decision, promise);
  }

  private async sendWake(decision: WakeDecision): Promise<void> {
    const { host } = decision;
    try {
      const sender = this.requireSender();
      await sender.send(host.spec.mac, decision.interface, this.ethernetVia(decision.interface));
      const forWhom =
        decision.reason === 'manual'
          ? 'on request'
          : `for ${decision.requesterIp} (${decision.requesterMac})`;
      this.log.info(
        `Waking ${host.spec.name} (${host.spec.mac}) ${forWhom} on ${decision.interface}`,
      );
      this.countWake(
        {
          name: host.spec.name,
          mac: host.spec.mac,
          requesterIp: decision.requesterIp,
          reason: decision.reason,
        },
        decision.interface,
      );
      this.store?.saveStats(host.spec.name, host.status);
    } catch (e) {
      // Only a manual wake has a caller to tell (wake() takes the entry); an ARP-caused one
      // kept here would stay forever, one per failed send.
      if (decision.reason === 'manual') this.failed.set(decision, messageOf(e));
      this.log.error(`Wake-on-LAN: cannot wake ${host.spec.name}: ${messageOf(e)}`);
    }
  }

  private countWake(event: WakeSentEvent, iface: string): void {
    this.wakesSent++;
    if (event.name === '') this.log.info(`Waking ${event.mac} on request on ${iface}`);
    this.emit('wakeSent', event);
    this.emit('changed', ['WakesSent']);
  }

  private onStateChanged(host: Host, from: HostState, to: HostState, why: string): void {
    this.log.info(`Wake-on-LAN: ${host.spec.name} (${host.spec.ip}) is ${to}, was ${from}: ${why}`);
    // The proxy decides on what it knows of the interface (forwarding, addresses): fresh, please.
    if (to === 'offline' && host.spec.proxy && this.captures.has(host.spec.interface)) {
      this.refreshInterface(host.spec.interface);
    }
    const props: HostProperty[] = ['State', 'LastSeen'];
    if (from === 'waking' && to === 'online') {
      props.push('LastWakeDuration');
      this.store?.saveStats(host.spec.name, host.status);
      this.history.alive(host.spec.name, host.status.lastWakeDuration);
    }
    this.lastSeenAnnounced.set(host.spec.name, host.status.lastSeen);
    this.emit('hostChanged', host, props);
  }

  /** LastSeen moves with every frame; announce it at most once a second per host. */
  private onSeen(host: Host): void {
    const announced = this.lastSeenAnnounced.get(host.spec.name) ?? 0;
    if (host.status.lastSeen - announced >= 1000) {
      this.lastSeenAnnounced.set(host.spec.name, host.status.lastSeen);
      this.emit('hostChanged', host, ['LastSeen']);
    }
  }
}

function sameNetwork(a: Buffer, b: Buffer, prefix: number): boolean {
  for (let bit = 0; bit < prefix; bit += 8) {
    const i = bit >> 3;
    const mask = (0xff << (8 - Math.min(8, prefix - bit))) & 0xff;
    if ((a[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}
