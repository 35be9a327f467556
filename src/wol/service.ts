import { EventEmitter } from 'node:events';
import type { StateDatabase } from '../core/database';
import { invalidArgument, messageOf, VigilError } from '../core/errors';
import { makeHostSpec, type HostOptions, type ResolveEnvironment } from './config';
import type { HostProperty, ServiceEvents, WolLogger } from './events';
import { WakeHistory } from './history';
import { kernelIo, WolNetwork, type WolIo } from './network';
import { proxyOutput, ProxyDriver } from './proxy-driver';
import { planReload, type ConfigHostsChange } from './reload';
import { WolStore, type StoredHost, type WakeHistoryRow } from './store';
import { WakeSender } from './wake-sender';
import { WolWatcher, type Host, type HostSpec, type HostState } from './watcher';

export type { HostProperty, ServiceProperty, WakeSentEvent, WolLogger } from './events';
export type { Pinger, WolIo } from './network';
export type { ConfigHostsChange } from './reload';

/**
 * The Wake-on-LAN watcher as the daemon runs it. The pure `WolWatcher` decides; around it, the
 * network (network.ts) feeds it frames and echo replies and sends what it asks for, the wake
 * sender (wake-sender.ts) sends magic packets, the proxy driver (proxy-driver.ts) keeps the
 * sleep proxy's claims, and the wake history (history.ts) records every decision. This class
 * keeps the hosts (from the config file, from D-Bus, restored from the state database), runs
 * the clock, and announces what changed; the bus layer listens to its events and calls its
 * methods, and never touches a socket.
 */

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

/** LastSeen moves with every frame; it is announced at most this often per host. */
const LAST_SEEN_ANNOUNCE_MS = 1000;

export class WolService extends EventEmitter<ServiceEvents> {
  readonly watcher: WolWatcher;
  private readonly log: WolLogger;
  private readonly store: WolStore | undefined;
  private readonly now: () => number;
  private readonly network: WolNetwork;
  private readonly history: WakeHistory;
  private readonly proxy: ProxyDriver;
  private readonly wakes: WakeSender;
  private readonly lastSeenAnnounced = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: WolServiceOptions) {
    super();
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.store = options.db ? new WolStore(options.db) : undefined;
    this.history = new WakeHistory(this.store, options.wakeHistoryLimit);
    this.network = new WolNetwork({
      io: options.io ?? kernelIo,
      log: this.log,
      sendEthernetFrame: options.sendEthernetFrame ?? false,
      watched: () => ({ interfaces: this.interfaces, hosts: this.watcher.list() }),
      on: {
        frame: (iface, buf, length, truncated) =>
          this.watcher.handleFrame(iface, buf, length, truncated),
        echoReply: (ip) => this.watcher.noteAliveByIp(undefined, ip),
        interfaceRead: (iface, info) => this.watcher.setInterface(iface, info),
        synced: () => this.proxy.retryLeftovers(),
      },
    });
    this.watcher = new WolWatcher(
      {
        wake: (decision) => {
          this.emit('hostChanged', decision.host, [
            'LastWake',
            'WakeCount',
            'LastWakeDuration',
            'LastWakeReason',
          ]);
          this.wakes.send(decision);
        },
        stateChanged: (h, from, to, why) => this.onStateChanged(h, from, to, why),
        seen: (h) => this.onSeen(h),
        decided: (record) => this.history.record(record),
        learned: (h) => this.onLearned(h),
        proxy: proxyOutput(this.network, this.store, this.log, this.now, (h) =>
          this.emit('hostChanged', h, ['Proxying']),
        ),
      },
      this.now,
    );
    this.proxy = new ProxyDriver(this.watcher, this.network, this.store, this.log);
    this.wakes = new WakeSender({
      watcher: this.watcher,
      network: this.network,
      store: this.store,
      log: this.log,
      interfaces: () => this.interfaces,
      sent: (event) => {
        this.emit('wakeSent', event);
        this.emit('changed', ['WakesSent']);
      },
    });
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
        this.addWatched(this.busHostSpec(stored));
      } catch (e) {
        this.log.error(`Wake-on-LAN: cannot restore host "${stored.name}": ${messageOf(e)}`);
      }
    }
    await this.network.open();
    this.watcher.proxyAvailable = this.network.available;
    if (!this.network.available) {
      this.log.warning(
        'Wake-on-LAN watcher unavailable: capturing ARP needs CAP_NET_RAW; ' +
          'hosts can be managed and woken by hand, but nothing is woken automatically',
      );
      this.proxy.warnUnavailable(this.watcher.list());
    } else {
      this.log.info(
        `Wake-on-LAN watcher watching ${this.watcher.list().length} host(s) on ` +
          `${this.interfaces.join(', ') || 'no interface yet'}`,
      );
    }
    this.proxy.recoverLeftovers();
    this.emit('changed', ['Available', 'Interfaces']);
    this.syncTimer();
    this.tick();
  }

  /**
   * Stop: hand every proxied address back first (the announcements go twice, a little apart,
   * within the daemon's stop budget), then close the sockets.
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.proxy.handBackAll();
    this.flushHistory();
    this.network.close();
  }

  get available(): boolean {
    return this.network.available;
  }

  get wakesSent(): number {
    return this.wakes.count;
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

  /** The wake history, newest first (0: everything kept). */
  getWakeHistory(limit: number): WakeHistoryRow[] {
    return this.history.list(this.now(), limit);
  }

  /** Manual wake by host name or MAC (see WakeSender.wake). */
  wake(nameOrMac: string): Promise<void> {
    return this.wakes.wake(nameOrMac);
  }

  /** AddHost: validate, watch, persist. */
  addHost(name: string, mac: string, ip: string, options: HostOptions): Host {
    const spec = makeHostSpec(name, mac, ip, options, 'bus', this.options.env);
    const macClash = this.watcher.hostsByMac(spec.mac)[0];
    if (macClash)
      throw invalidArgument(`${spec.mac} is already watched as "${macClash.spec.name}"`);
    const host = this.addWatched(spec);
    this.store?.saveHost(spec, this.now());
    if (this.network.opened) this.syncTimer();
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
    this.unwatch(host);
    this.store?.deleteHost(name);
    this.log.info(`Wake-on-LAN: no longer watching ${name}`);
    this.network.sync();
    this.syncTimer();
    if (this.interfaces.join(',') !== interfacesBefore) this.emit('changed', ['Interfaces']);
    return host;
  }

  /**
   * A config reload's hosts (see reload.ts). Checks `specs` against everything that stays
   * (hosts added over D-Bus, the watched interfaces) and returns the change to make, so that
   * a refused reload changes nothing. A host added over D-Bus that is not watched (the file
   * took its name, or it clashed with a file host) comes back once it can.
   */
  prepareConfigHosts(specs: readonly HostSpec[]): () => ConfigHostsChange {
    const stored = this.store?.loadHosts() ?? [];
    const plan = planReload(specs, {
      current: this.watcher.list(),
      check: (spec) => this.refuseUnwatchedInterface(spec),
      busHosts: new Map(stored.map((h) => [h.name, () => this.busHostSpec(h)])),
    });
    return () => {
      const interfacesBefore = this.interfaces.join(',');
      for (const host of plan.gone) {
        if (host.spec.source === 'bus') {
          this.log.warning(
            `Wake-on-LAN: host "${host.spec.name}" added over D-Bus is now also in the config file; the config wins`,
          );
        }
        this.unwatch(host);
      }
      const updated = this.watcher.updateHosts(plan.changed.map((c) => c.spec));
      updated.forEach((host, i) => this.emit('hostChanged', host, plan.changed[i].props));
      this.network.sync();
      if (this.interfaces.join(',') !== interfacesBefore) this.emit('changed', ['Interfaces']);
      for (const spec of plan.added) this.addWatched(spec);
      for (const spec of plan.restored) {
        this.addWatched(spec);
        this.log.info(`Wake-on-LAN: watching ${spec.name} again, added over D-Bus`);
      }
      for (const { name, error } of plan.unrestorable) {
        this.log.error(`Wake-on-LAN: cannot restore host "${name}": ${error}`);
      }
      this.syncTimer();
      return plan.change;
    };
  }

  /** A host kept in the state database after AddHost, checked again (the machine may have changed). */
  private busHostSpec(stored: StoredHost): HostSpec {
    return makeHostSpec(stored.name, stored.mac, stored.ip, stored, 'bus', this.options.env);
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
    if (this.network.opened) {
      this.proxy.warnUnavailable([host]);
      this.network.sync();
    }
    if (this.interfaces.join(',') !== interfacesBefore) this.emit('changed', ['Interfaces']);
    return host;
  }

  /** Stop watching a host (its bus object goes); what is persisted is the caller's business. */
  private unwatch(host: Host): void {
    this.watcher.removeHost(host.spec.name);
    this.lastSeenAnnounced.delete(host.spec.name);
    this.emit('hostRemoved', host);
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

  private tick(): void {
    this.network.tick(this.now());
    for (const host of this.watcher.tick()) this.network.ping(host);
    this.flushHistory();
  }

  private flushHistory(): void {
    try {
      this.history.flush(this.now());
    } catch (e) {
      this.log.error(`Wake-on-LAN: cannot write the wake history: ${messageOf(e)}`);
    }
  }

  private onLearned(host: Host): void {
    this.log.info(
      `Wake-on-LAN: ${host.spec.name} uses ${host.status.learnedIp6.join(', ')} (learned from its traffic)`,
    );
    this.store?.saveLearned(host.spec.name, host.spec.mac, this.watcher.learnedAddresses(host));
    this.emit('hostChanged', host, ['Ip6']);
    // A proxied host's addresses are in the capture filter; any host's are in the groups.
    if (host.spec.proxy) this.network.sync();
    else this.network.syncGroups();
  }

  private onStateChanged(host: Host, from: HostState, to: HostState, why: string): void {
    this.log.info(`Wake-on-LAN: ${host.spec.name} (${host.spec.ip}) is ${to}, was ${from}: ${why}`);
    // The proxy decides on what it knows of the interface (forwarding, addresses): fresh, please.
    if (to === 'offline' && host.spec.proxy && this.network.canSendOn(host.spec.interface)) {
      this.network.refresh(host.spec.interface);
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

  private onSeen(host: Host): void {
    const announced = this.lastSeenAnnounced.get(host.spec.name) ?? 0;
    if (host.status.lastSeen - announced >= LAST_SEEN_ANNOUNCE_MS) {
      this.lastSeenAnnounced.set(host.spec.name, host.status.lastSeen);
      this.emit('hostChanged', host, ['LastSeen']);
    }
  }
}
