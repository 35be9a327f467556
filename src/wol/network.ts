import os from 'node:os';
import { messageOf, VigilError } from '../core/errors';
import {
  formatIpv6,
  interfaceAddresses,
  isLinkLocal6,
  isOnLink,
  parseIpv6,
  samePrefix,
  solicitedNode,
} from './addresses';
import type { WolLogger } from './events';
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
import { hostIp6, type Host, type LocalInterface } from './watcher';

/**
 * This machine on the watched LAN, as the Wake-on-LAN service uses it: one capture per
 * interface with the filter its hosts need, the magic-packet sender, the ICMP and ICMPv6
 * pingers, the IPv6 multicast groups joined for the hosts' addresses, and what is known of
 * each interface (its MAC, addresses, forwarding). Frames and echo replies go to the handlers;
 * nothing is decided here.
 */

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

/** This machine's interfaces are read again this often: an address or a MAC may change. */
const INTERFACE_REFRESH_MS = 10_000;

/** What to watch: the interfaces, and the hosts whose MACs and addresses the filters name. */
export interface Watched {
  readonly interfaces: readonly string[];
  readonly hosts: readonly Host[];
}

export interface NetworkHandlers {
  /** A captured frame (the buffer is the capture's, overwritten by the next frame). */
  frame(iface: string, buf: Buffer, length: number, truncated: boolean): void;
  /** An echo reply from `ip` (IPv4 or IPv6 text). */
  echoReply(ip: string): void;
  /** This machine on `iface`, as just read. */
  interfaceRead(iface: string, info: LocalInterface): void;
  /** The captures were brought in line with what is watched (an interface may send now). */
  synced(): void;
}

export interface NetworkOptions {
  readonly io: WolIo;
  readonly log: WolLogger;
  /** Also send the magic packet as a raw Ethernet frame of type 0x0842 (like etherwake). */
  readonly sendEthernetFrame: boolean;
  readonly watched: () => Watched;
  readonly on: NetworkHandlers;
}

export class WolNetwork {
  /** Whether frames can be captured and sent (CAP_NET_RAW); known once opened. */
  available = false;
  private readonly io: WolIo;
  private readonly log: WolLogger;
  private readonly captures = new Map<string, Capture>();
  private readonly interfaceInfo = new Map<string, LocalInterface>();
  private sender: MagicSender | undefined;
  private pinger4: Pinger | undefined;
  private pinger6: Pinger | undefined;
  private membership: GroupMembership | undefined;
  /** Group errors said once: an interface without IPv6 fails every time. */
  private readonly groupErrors = new Set<string>();
  private lastRefresh = 0;

  constructor(private readonly options: NetworkOptions) {
    this.io = options.io;
    this.log = options.log;
  }

  /** Between open() and close(): magic packets can be sent. */
  get opened(): boolean {
    return this.sender !== undefined;
  }

  /** The sender always; with CAP_NET_RAW also the pingers, the groups and the captures. */
  async open(): Promise<void> {
    this.sender = this.io.createSender();
    await this.sender.start();
    this.available = this.io.canCapture();
    if (!this.available) return;
    this.pinger4 = this.openPinger(4);
    this.pinger6 = this.openPinger(6);
    const membership = this.io.createMembership?.();
    try {
      await membership?.start();
      this.membership = membership;
    } catch (e) {
      this.log.warning(`Wake-on-LAN: no IPv6 multicast membership: ${messageOf(e)}`);
    }
    this.sync();
  }

  close(): void {
    for (const c of this.captures.values()) c.close();
    this.captures.clear();
    this.pinger4?.close();
    this.pinger4 = undefined;
    this.pinger6?.close();
    this.pinger6 = undefined;
    this.membership?.close();
    this.membership = undefined;
    this.sender?.close();
    this.sender = undefined;
  }

  private openPinger(family: 4 | 6): Pinger | undefined {
    const name = family === 4 ? 'ICMP' : 'ICMPv6';
    try {
      return this.io.createPinger(
        (ip) => this.options.on.echoReply(ip),
        (message) => this.log.warning(`Wake-on-LAN: ${name} pinger: ${message}`),
        family,
      );
    } catch (e) {
      this.log.warning(`Wake-on-LAN: no ${name} liveness probe: ${messageOf(e)}`);
      return undefined;
    }
  }

  /** Whether frames can be sent on `iface` now (it has a capture). */
  canSendOn(iface: string): boolean {
    return this.captures.has(iface);
  }

  /** A raw frame (the sleep proxy's); dropped where there is no capture to send it. */
  send(iface: string, frame: Buffer): void {
    const capture = this.captures.get(iface);
    if (!capture) return;
    try {
      capture.send(frame);
    } catch (e) {
      this.log.debug(`Wake-on-LAN: cannot send on ${iface}: ${messageOf(e)}`);
    }
  }

  /** The magic packet for `mac` on `iface`: UDP broadcast, and the raw 0x0842 frame when due. */
  async sendMagic(mac: string, iface: string): Promise<void> {
    if (!this.sender) throw new VigilError('Failed', 'the Wake-on-LAN watcher is not started');
    await this.sender.send(mac, iface, this.ethernetVia(iface));
  }

  /** The raw 0x0842 frame goes out when configured, or when there is no IPv4 broadcast to use. */
  private ethernetVia(iface: string): Capture | undefined {
    const wanted = this.options.sendEthernetFrame || interfaceAddresses(iface).length === 0;
    return wanted ? this.captures.get(iface) : undefined;
  }

  /** Where to wake a MAC nobody watches when no interface is watched: every one with IPv4. */
  interfacesWithIpv4(): string[] {
    return Object.keys(os.networkInterfaces()).filter(
      (i) => i !== 'lo' && interfaceAddresses(i).length > 0,
    );
  }

  /** Open, re-filter or close captures so each watched interface has one with the right filter. */
  sync(): void {
    if (!this.available) return;
    const { interfaces, hosts } = this.options.watched();
    const macs = new Map<string, string[]>(interfaces.map((i) => [i, []]));
    const proxied = new Map<string, string[]>();
    for (const h of hosts) {
      const iface = h.spec.interface;
      macs.set(iface, [...(macs.get(iface) ?? []), h.spec.mac]);
      if (h.spec.proxy) {
        proxied.set(iface, [...(proxied.get(iface) ?? []), h.spec.ip, ...hostIp6(h)]);
      }
    }
    for (const [iface, capture] of this.captures) {
      if (!macs.has(iface)) {
        capture.close();
        this.captures.delete(iface);
      }
    }
    for (const [iface, watchedMacs] of macs) {
      if (!this.interfaceInfo.has(iface)) this.refresh(iface);
      const filter = captureFilter(
        watchedMacs,
        this.interfaceInfo.get(iface)?.mac,
        proxied.get(iface),
      );
      try {
        const existing = this.captures.get(iface);
        if (existing) existing.setFilter(filter);
        else {
          this.captures.set(
            iface,
            this.io.openCapture(iface, filter, (buf, length, truncated) =>
              this.options.on.frame(iface, buf, length, truncated),
            ),
          );
        }
      } catch (e) {
        this.log.error(`Wake-on-LAN: cannot capture on ${iface}: ${messageOf(e)}`);
      }
    }
    this.options.on.synced();
    this.syncGroups(hosts);
  }

  /**
   * Join the solicited-node group of every watched IPv6 address on its host's interface (the
   * groups alone change when a host learns an address; the captures need not).
   */
  syncGroups(hosts: readonly Host[] = this.options.watched().hosts): void {
    if (!this.membership) return;
    const wanted = new Map<string, string[]>();
    for (const h of hosts) {
      const groups = wanted.get(h.spec.interface) ?? [];
      for (const text of hostIp6(h)) {
        const bytes = parseIpv6(text);
        if (bytes) groups.push(formatIpv6(solicitedNode(bytes)));
      }
      wanted.set(h.spec.interface, [...new Set(groups)]);
    }
    for (const error of this.membership.sync(wanted)) {
      if (this.groupErrors.has(error)) continue;
      this.groupErrors.add(error);
      this.log.debug(`Wake-on-LAN: cannot join ${error}`);
    }
  }

  /** Re-read this machine on `iface`; true when its MAC changed (the filter names it). */
  refresh(iface: string): boolean {
    let info: LocalInterface;
    try {
      info = (this.io.readInterface ?? readInterface)(iface);
    } catch (e) {
      this.log.debug(`Wake-on-LAN: cannot read ${iface}: ${messageOf(e)}`);
      return false;
    }
    const macChanged = this.interfaceInfo.get(iface)?.mac !== info.mac;
    this.interfaceInfo.set(iface, info);
    this.options.on.interfaceRead(iface, info);
    return macChanged;
  }

  /** The clock ticked: read the captured interfaces again when due, re-filter on a new MAC. */
  tick(now: number): void {
    if (now - this.lastRefresh <= INTERFACE_REFRESH_MS) return;
    this.lastRefresh = now;
    let macChanged = false;
    for (const iface of this.captures.keys()) macChanged = this.refresh(iface) || macChanged;
    if (macChanged) this.sync();
  }

  /**
   * Echo to the host's IPv4 address and to up to two of its IPv6 addresses (link-local first).
   * A host watched on an interface lives on that interface's LAN; an echo to an address that
   * is not on-link there would be routed elsewhere (possibly off this LAN), so it is skipped.
   */
  ping(host: Host): void {
    const iface = host.spec.interface;
    const targets: [Pinger | undefined, string][] = [];
    if (isOnLink(iface, host.spec.ip)) targets.push([this.pinger4, host.spec.ip]);
    else this.log.debug(`Wake-on-LAN: not pinging ${host.spec.ip}: not on ${iface}'s subnet`);
    const own = this.interfaceInfo.get(iface)?.ipv6 ?? [];
    const v6 = hostIp6(host)
      .map((text) => ({ text, bytes: parseIpv6(text) }))
      .filter((a): a is { text: string; bytes: Buffer } => a.bytes !== undefined)
      .filter(
        (a) => isLinkLocal6(a.bytes) || own.some((o) => samePrefix(o.bytes, a.bytes, o.prefix)),
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
}
