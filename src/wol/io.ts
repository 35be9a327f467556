import dgram from 'node:dgram';
import fs from 'node:fs';
import { Cap } from 'cap';
import * as raw from 'raw-socket';
import { messageOf } from '../core/errors';
import os from 'node:os';
import {
  formatMac,
  interfaceAddresses,
  parseIpv4,
  parseIpv6,
  parseMac,
  type InterfaceAddress,
} from './addresses';
import { magicEthernetFrame, magicPacket } from './packets';
import type { LocalInterface } from './watcher';

/**
 * Thin adapters between the watcher and the kernel: a libpcap capture per interface (via
 * `cap`), the magic-packet sender (UDP broadcast via dgram, optional raw 0x0842 frame via the
 * capture handle) and the ICMP echo pinger (`raw-socket`). No decisions are made here.
 */

const CAP_NET_RAW = 13;

/** Whether this process holds CAP_NET_RAW (needed for AF_PACKET capture and raw ICMP). */
export function hasNetRawCapability(statusPath = '/proc/self/status'): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(statusPath, 'utf8'));
    return m !== null && (BigInt('0x' + m[1]) & (1n << BigInt(CAP_NET_RAW))) !== 0n;
  } catch {
    return false;
  }
}

export type FrameHandler = (buf: Buffer, length: number, truncated: boolean) => void;

/** Neighbor Solicitations and Advertisements (never behind extension headers: RFC 4861 hop limit 255). */
const NDP_FILTER = '(icmp6 and (ip6[40] == 135 or ip6[40] == 136))';

/**
 * The BPF filter: every ARP frame and Neighbor Solicitation/Advertisement, any frame sent by
 * a watched MAC (liveness, learning), and what reaches this machine's MAC for an address the
 * sleep proxy may answer for (the traffic it inspects). The proxy's addresses are in the
 * filter whether or not they are taken over, so taking over never swaps the capture handle.
 */
export function captureFilter(
  macs: readonly string[],
  ownMac?: string,
  proxied: readonly string[] = [],
): string {
  const parts = ['arp', NDP_FILTER, ...[...new Set(macs)].sort().map((mac) => `ether src ${mac}`)];
  if (ownMac && proxied.length > 0) {
    const hosts = [...new Set(proxied)].sort().map((a) => `dst host ${a}`);
    parts.push(`(ether dst ${ownMac} and (${hosts.join(' or ')}))`);
  }
  return parts.join(' or ');
}

function readSysctl(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * This machine on `iface`, as the watcher and the sleep proxy need it: its Ethernet address
 * (none for a non-Ethernet link), its addresses, and whether the kernel forwards or drops
 * the IP traffic that arrives for an address it does not hold.
 */
export function readInterface(
  iface: string,
  sysClassNet = '/sys/class/net',
  procSysNet = '/proc/sys/net',
): LocalInterface {
  const ethernet = readSysctl(`${sysClassNet}/${iface}/type`) === '1';
  const macBytes = ethernet
    ? parseMac(readSysctl(`${sysClassNet}/${iface}/address`) ?? '')
    : undefined;
  const ipv4 = interfaceAddresses(iface)
    .map((a: InterfaceAddress) => parseIpv4(a.address))
    .filter((v): v is number => v !== undefined);
  const ipv6: { bytes: Buffer; prefix: number }[] = [];
  for (const e of os.networkInterfaces()[iface] ?? []) {
    if (e.family !== 'IPv6') continue;
    const bytes = parseIpv6(e.address.replace(/%.*$/, ''));
    const prefix = Number(e.cidr?.split('/')[1] ?? 64);
    if (bytes) ipv6.push({ bytes, prefix });
  }
  const on = (file: string): boolean => readSysctl(file) === '1';
  return {
    mac: macBytes ? formatMac(macBytes) : undefined,
    ipv4,
    ipv6,
    ipv4Forwarding: on(`${procSysNet}/ipv4/conf/${iface}/forwarding`),
    // ip6_forward() obeys the global switch; a per-interface 1 with the global 0 still drops.
    ipv6Forwarding: on(`${procSysNet}/ipv6/conf/all/forwarding`),
    ipv6Disabled:
      on(`${procSysNet}/ipv6/conf/${iface}/disable_ipv6`) ||
      !fs.existsSync(`${procSysNet}/ipv6/conf/${iface}`),
  };
}

export interface Capture {
  readonly iface: string;
  readonly filter: string;
  setFilter(filter: string): void;
  send(frame: Buffer): void;
  close(): void;
}

/**
 * Closed Cap objects are kept for the life of the process: `cap` 0.2.1 stops but never closes
 * its libuv poll handle, so a closed Cap that is garbage-collected leaves libuv pointing at
 * freed memory (SIGSEGV on a later frame). One small object per filter change is the price.
 */
const retiredCaps: Cap[] = [];

function retire(cap: Cap): void {
  cap.close();
  cap.removeAllListeners('packet');
  retiredCaps.push(cap);
}

/**
 * A live libpcap capture on one interface (immediate mode, non-blocking, on the event loop).
 * A new filter means a new handle: `cap` also crashes when one Cap object is opened a second
 * time and then sends, so handles are swapped, never re-opened.
 */
export class PcapCapture implements Capture {
  private cap: Cap | undefined;
  private currentFilter = '';

  constructor(
    readonly iface: string,
    filter: string,
    private readonly onFrame: FrameHandler,
  ) {
    this.setFilter(filter);
  }

  get filter(): string {
    return this.currentFilter;
  }

  setFilter(filter: string): void {
    if (this.cap && filter === this.currentFilter) return;
    const cap = new Cap();
    // Large enough for any frame, so "truncated" only ever means a frame the kernel cut.
    const buffer = Buffer.alloc(65536);
    cap.on('packet', (nbytes: number, truncated: boolean) => {
      this.onFrame(buffer, nbytes, truncated);
    });
    // 4 MiB of kernel ring absorbs bursts while the event loop is busy.
    cap.open(this.iface, filter, 4 * 1024 * 1024, buffer);
    const old = this.cap;
    this.cap = cap;
    this.currentFilter = filter;
    if (old) retire(old);
  }

  send(frame: Buffer): void {
    if (!this.cap) throw new Error(`capture on ${this.iface} is closed`);
    this.cap.send(frame, frame.length);
  }

  close(): void {
    if (this.cap) retire(this.cap);
    this.cap = undefined;
  }
}

export interface SendResult {
  readonly broadcast: string;
  readonly ethernet: boolean;
}

/** Sends magic packets: UDP broadcast to port 9 on the interface's broadcast address. */
export class MagicSender {
  private socket: dgram.Socket | undefined;
  private readonly broadcastCache = new Map<string, { address: string; at: number }>();

  async start(): Promise<void> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.setBroadcast(true);
    // A send error is reported through the send callback; this keeps a stray one from crashing.
    socket.on('error', () => undefined);
    this.socket = socket;
  }

  /** The directed broadcast address of `iface` (cached for a few seconds, addresses rarely move). */
  broadcastAddress(iface: string, now = Date.now()): string | undefined {
    const cached = this.broadcastCache.get(iface);
    if (cached && now - cached.at < 5000) return cached.address;
    const address = interfaceAddresses(iface)[0]?.broadcast;
    if (address) this.broadcastCache.set(iface, { address, at: now });
    return address;
  }

  async send(mac: string, iface: string, ethernetVia?: Capture): Promise<SendResult> {
    const socket = this.socket;
    if (!socket) throw new Error('magic packet sender is not started');
    let ethernet = false;
    if (ethernetVia) {
      const sourceMac = parseMac(fs.readFileSync(`/sys/class/net/${iface}/address`, 'utf8'));
      if (sourceMac) {
        ethernetVia.send(magicEthernetFrame(mac, sourceMac));
        ethernet = true;
      }
    }
    const broadcast = this.broadcastAddress(iface);
    if (!broadcast) {
      if (ethernet) return { broadcast: '', ethernet };
      throw new Error(`${iface} has no IPv4 address to broadcast the magic packet from`);
    }
    const packet = magicPacket(mac);
    await new Promise<void>((resolve, reject) => {
      socket.send(packet, 9, broadcast, (err) => (err ? reject(err) : resolve()));
    });
    return { broadcast, ethernet };
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}

/**
 * Membership of IPv6 multicast groups on interfaces: the solicited-node groups of the watched
 * hosts' addresses. A switch that snoops MLD forwards a Neighbor Solicitation only to the ports
 * that joined its group, which a sleeping host did and vigil otherwise would not; joining makes
 * vigil's kernel report the groups, so the solicitations reach it. The kernel ignores them
 * (they are not for its addresses); the capture is what reads them.
 */
export class GroupMembership {
  private socket: dgram.Socket | undefined;
  private readonly joined = new Map<string, Set<string>>();

  async start(): Promise<void> {
    const socket = dgram.createSocket({ type: 'udp6', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '::', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', () => undefined);
    this.socket = socket;
  }

  /** Join and leave so that each interface is in exactly `wanted` groups; the errors, per group. */
  sync(wanted: ReadonlyMap<string, readonly string[]>): string[] {
    const socket = this.socket;
    if (!socket) return [];
    const errors: string[] = [];
    for (const [iface, groups] of this.joined) {
      const keep = new Set(wanted.get(iface) ?? []);
      for (const g of groups) {
        if (keep.has(g)) continue;
        try {
          socket.dropMembership(g, `::%${iface}`);
        } catch {
          // Gone with the interface.
        }
        groups.delete(g);
      }
    }
    for (const [iface, groups] of wanted) {
      const have = this.joined.get(iface) ?? new Set<string>();
      this.joined.set(iface, have);
      for (const g of groups) {
        if (have.has(g)) continue;
        try {
          socket.addMembership(g, `::%${iface}`);
          have.add(g);
        } catch (e) {
          errors.push(`${g} on ${iface}: ${messageOf(e)}`);
        }
      }
    }
    return errors;
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
    this.joined.clear();
  }
}

const IPPROTO_ICMPV6 = 58;
const ICMP6_FILTER = 1;
const ICMP6_ECHO_REPLY = 129;

/**
 * ICMP echo over a raw socket, IPv4 or ICMPv6; replies carrying our identifier are reported by
 * source address. An IPv6 link-local target is written `fe80::...%eth0`.
 */
export class IcmpPinger {
  private readonly socket: raw.RawSocket;
  private readonly identifier = process.pid & 0xffff;
  private sequence = 0;

  constructor(
    onReply: (sourceIp: string) => void,
    onError: (message: string) => void,
    private readonly family: 4 | 6 = 4,
  ) {
    this.socket =
      family === 4
        ? raw.createSocket({ protocol: raw.Protocol.ICMP })
        : raw.createSocket({ protocol: IPPROTO_ICMPV6, addressFamily: raw.AddressFamily.IPv6 });
    if (family === 6) {
      // Only echo replies reach us (every NS and RA on the LAN would otherwise).
      const filter = Buffer.alloc(32, 0xff);
      const word = ICMP6_ECHO_REPLY >> 5;
      const value = 0xffffffff & ~(1 << (ICMP6_ECHO_REPLY & 31));
      if (os.endianness() === 'LE') filter.writeUInt32LE(value >>> 0, word * 4);
      else filter.writeUInt32BE(value >>> 0, word * 4);
      try {
        this.socket.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, filter, filter.length);
      } catch {
        // Unfiltered works too: isEchoReplyFor drops the rest.
      }
    }
    this.socket.on('message', (buffer: Buffer, source: string) => {
      if (isEchoReplyFor(buffer, this.identifier, family)) onReply(source);
    });
    this.socket.on('error', (e: Error) => onError(messageOf(e)));
  }

  ping(ip: string): void {
    this.sequence = (this.sequence + 1) & 0xffff;
    const request = Buffer.alloc(16);
    request[0] = this.family === 4 ? 8 : 128;
    request.writeUInt16BE(this.identifier, 4);
    request.writeUInt16BE(this.sequence, 6);
    request.write('vigil-wol', 8, 'latin1');
    // The kernel fills in the ICMPv6 checksum (it covers the IPv6 pseudo-header).
    if (this.family === 4) raw.writeChecksum(request, 2, raw.createChecksum(request));
    this.socket.send(request, 0, request.length, ip, () => undefined);
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * An echo reply with our identifier (bounds-checked): for IPv4 the packet with its IP header,
 * for IPv6 the ICMPv6 message alone (raw IPv6 sockets deliver no header).
 */
export function isEchoReplyFor(packet: Buffer, identifier: number, family: 4 | 6 = 4): boolean {
  if (family === 6) {
    return (
      packet.length >= 8 && packet[0] === ICMP6_ECHO_REPLY && packet.readUInt16BE(4) === identifier
    );
  }
  if (packet.length < 20) return false;
  const headerLength = (packet[0] & 0x0f) * 4;
  if (packet[0] >> 4 !== 4 || headerLength < 20 || packet.length < headerLength + 8) return false;
  return packet[headerLength] === 0 && packet.readUInt16BE(headerLength + 4) === identifier;
}
