import dgram from 'node:dgram';
import fs from 'node:fs';
import { Cap } from 'cap';
import * as raw from 'raw-socket';
import { messageOf } from '../core/errors';
import { interfaceAddresses, parseMac } from './addresses';
import { magicEthernetFrame, magicPacket } from './frames';

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

/** The BPF filter: every ARP frame, plus any frame sent by a watched MAC (liveness). */
export function captureFilter(macs: readonly string[]): string {
  return ['arp', ...[...new Set(macs)].sort().map((mac) => `ether src ${mac}`)].join(' or ');
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

/** ICMP echo over a raw IPv4 socket; replies carrying our identifier are reported by source IP. */
export class IcmpPinger {
  private readonly socket: raw.RawSocket;
  private readonly identifier = process.pid & 0xffff;
  private sequence = 0;

  constructor(onReply: (sourceIp: string) => void, onError: (message: string) => void) {
    this.socket = raw.createSocket({ protocol: raw.Protocol.ICMP });
    this.socket.on('message', (buffer: Buffer, source: string) => {
      if (isEchoReplyFor(buffer, this.identifier)) onReply(source);
    });
    this.socket.on('error', (e: Error) => onError(messageOf(e)));
  }

  ping(ip: string): void {
    this.sequence = (this.sequence + 1) & 0xffff;
    const request = Buffer.alloc(16);
    request[0] = 8;
    request.writeUInt16BE(this.identifier, 4);
    request.writeUInt16BE(this.sequence, 6);
    request.write('vigil-wol', 8, 'latin1');
    raw.writeChecksum(request, 2, raw.createChecksum(request));
    this.socket.send(request, 0, request.length, ip, () => undefined);
  }

  close(): void {
    this.socket.close();
  }
}

/** An IPv4 packet holding an ICMP echo reply with our identifier (bounds-checked). */
export function isEchoReplyFor(packet: Buffer, identifier: number): boolean {
  if (packet.length < 20) return false;
  const headerLength = (packet[0] & 0x0f) * 4;
  if (packet[0] >> 4 !== 4 || headerLength < 20 || packet.length < headerLength + 8) return false;
  return packet[headerLength] === 0 && packet.readUInt16BE(headerLength + 4) === identifier;
}
