import { createMagicPacket } from 'wol';

/**
 * Frames vigil puts on the wire itself: the magic packet, ARP (answers, probes, gratuitous
 * announcements) and IPv6 Neighbor Discovery (solicitations, advertisements). Addresses are
 * given as bytes (MAC 6, IPv4 4 as a number, IPv6 16).
 */

const ETHER_HEADER = 14;
const ARP_IPV4_LENGTH = 28;
const BROADCAST = Buffer.alloc(6, 0xff);

/** The magic packet: 6 bytes 0xff, then the MAC 16 times (built by the `wol` package). */
export function magicPacket(mac: string): Buffer {
  return createMagicPacket(mac);
}

/** The same magic packet as a broadcast Ethernet frame of type 0x0842 (what etherwake sends). */
export function magicEthernetFrame(mac: string, sourceMac: Buffer): Buffer {
  const payload = magicPacket(mac);
  const frame = Buffer.alloc(ETHER_HEADER + payload.length);
  frame.fill(0xff, 0, 6);
  sourceMac.copy(frame, 6, 0, 6);
  frame.writeUInt16BE(0x0842, 12);
  payload.copy(frame, ETHER_HEADER);
  return frame;
}

/** An ARP frame: the Ethernet source, and the ARP sender (who the mapping is about) apart. */
export function arpFrame(options: {
  op: 'request' | 'reply';
  sourceMac: Buffer;
  senderMac?: Buffer;
  senderIp: number;
  targetMac?: Buffer;
  targetIp: number;
  destinationMac?: Buffer;
}): Buffer {
  const frame = Buffer.alloc(ETHER_HEADER + ARP_IPV4_LENGTH);
  (options.destinationMac ?? BROADCAST).copy(frame, 0);
  options.sourceMac.copy(frame, 6);
  frame.writeUInt16BE(0x0806, 12);
  frame.writeUInt16BE(1, 14);
  frame.writeUInt16BE(0x0800, 16);
  frame[18] = 6;
  frame[19] = 4;
  frame.writeUInt16BE(options.op === 'request' ? 1 : 2, 20);
  (options.senderMac ?? options.sourceMac).copy(frame, 22);
  frame.writeUInt32BE(options.senderIp >>> 0, 28);
  (options.targetMac ?? Buffer.alloc(6)).copy(frame, 32);
  frame.writeUInt32BE(options.targetIp >>> 0, 38);
  return frame;
}

/** The Ethernet address an IPv6 multicast group is sent to (RFC 2464: 33:33 + its last 32 bits). */
export function multicastMac6(group: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x33, 0x33]), group.subarray(12, 16)]);
}

/** One's complement sum of `length` bytes from `offset`, added to `sum` (not folded). */
function sum16(buf: Buffer, offset: number, length: number, sum = 0): number {
  let s = sum;
  const end = offset + length;
  let i = offset;
  for (; i + 1 < end; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (i < end) s += buf[i] << 8;
  return s;
}

/**
 * The ICMPv6 checksum (RFC 4443 2.3) over the pseudo-header of the addresses at `source` and
 * `destination` and the message at `message`. Over a message whose checksum field is right
 * this is 0; over one whose field is zero, it is the value to write there.
 */
export function icmp6Checksum(
  buf: Buffer,
  source: number,
  destination: number,
  message: number,
  length: number,
): number {
  let s = sum16(buf, source, 16);
  s = sum16(buf, destination, 16, s);
  s += (length >>> 16) + (length & 0xffff) + 58;
  s = sum16(buf, message, length, s);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** A Neighbor Solicitation or Advertisement (hop limit 255, checksum filled in). */
export function ndpFrame(options: {
  type: 'ns' | 'na';
  sourceMac: Buffer;
  destinationMac: Buffer;
  sourceIp: Buffer;
  destinationIp: Buffer;
  target: Buffer;
  /** NS: the Source, NA: the Target Link-Layer Address option (none for a DAD probe). */
  linkAddress?: Buffer;
  solicited?: boolean;
  override?: boolean;
}): Buffer {
  const messageLength = 24 + (options.linkAddress ? 8 : 0);
  const frame = Buffer.alloc(ETHER_HEADER + 40 + messageLength);
  options.destinationMac.copy(frame, 0);
  options.sourceMac.copy(frame, 6);
  frame.writeUInt16BE(0x86dd, 12);
  const ip = ETHER_HEADER;
  frame.writeUInt32BE(0x60000000, ip);
  frame.writeUInt16BE(messageLength, ip + 4);
  frame[ip + 6] = 58;
  frame[ip + 7] = 255;
  options.sourceIp.copy(frame, ip + 8);
  options.destinationIp.copy(frame, ip + 24);
  const m = ip + 40;
  frame[m] = options.type === 'ns' ? 135 : 136;
  if (options.type === 'na') {
    frame[m + 4] = (options.solicited ? 0x40 : 0) | (options.override ? 0x20 : 0);
  }
  options.target.copy(frame, m + 8);
  if (options.linkAddress) {
    frame[m + 24] = options.type === 'ns' ? 1 : 2;
    frame[m + 25] = 1;
    options.linkAddress.copy(frame, m + 26);
  }
  frame.writeUInt16BE(icmp6Checksum(frame, ip + 8, ip + 24, m, messageLength), m + 2);
  return frame;
}
