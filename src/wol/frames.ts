import { createMagicPacket } from 'wol';
import { formatMac, isUnicastMac } from './addresses';

/**
 * Defensive parsing of captured Ethernet frames. Every offset is bounds-checked against the
 * captured length: a frame from the wire is untrusted input.
 */

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_WOL = 0x0842;
const ETHER_HEADER = 14;
const ARP_IPV4_LENGTH = 28;

export type Frame =
  | {
      readonly kind: 'arp';
      readonly sourceMac: string;
      readonly op: 'request' | 'reply';
      readonly senderMac: string;
      /** IPv4 addresses as unsigned 32-bit numbers. */
      readonly senderIp: number;
      readonly targetIp: number;
    }
  | { readonly kind: 'other'; readonly sourceMac: string }
  | { readonly kind: 'malformed'; readonly reason: string };

const malformed = (reason: string): Frame => ({ kind: 'malformed', reason });

/** Parse the first `length` bytes of `buf` (the capture buffer is reused between frames). */
export function parseFrame(buf: Buffer, length: number = buf.length, truncated = false): Frame {
  if (truncated) return malformed('truncated by capture');
  const end = Math.min(length, buf.length);
  if (end < ETHER_HEADER) return malformed('shorter than an Ethernet header');
  if (!isUnicastMac(buf.subarray(6, 12))) return malformed('source MAC is not unicast');
  const sourceMac = formatMac(buf, 6);
  let offset = 12;
  let ethertype = buf.readUInt16BE(offset);
  if (ethertype === ETHERTYPE_VLAN) {
    if (end < ETHER_HEADER + 4) return malformed('truncated VLAN tag');
    offset += 4;
    ethertype = buf.readUInt16BE(offset);
  }
  offset += 2;
  if (ethertype !== ETHERTYPE_ARP) return { kind: 'other', sourceMac };

  if (end - offset < 8) return malformed('truncated ARP header');
  const htype = buf.readUInt16BE(offset);
  const ptype = buf.readUInt16BE(offset + 2);
  const hlen = buf[offset + 4];
  const plen = buf[offset + 5];
  const op = buf.readUInt16BE(offset + 6);
  if (htype !== 1 || ptype !== 0x0800 || hlen !== 6 || plen !== 4) {
    return malformed('ARP is not Ethernet/IPv4');
  }
  if (op !== 1 && op !== 2) return malformed(`unknown ARP operation ${op}`);
  if (end - offset < ARP_IPV4_LENGTH) return malformed('truncated ARP body');
  const senderMacBytes = buf.subarray(offset + 8, offset + 14);
  if (!isUnicastMac(senderMacBytes)) return malformed('ARP sender MAC is not unicast');
  return {
    kind: 'arp',
    sourceMac,
    op: op === 1 ? 'request' : 'reply',
    senderMac: formatMac(senderMacBytes),
    senderIp: buf.readUInt32BE(offset + 14),
    targetIp: buf.readUInt32BE(offset + 24),
  };
}

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
  frame.writeUInt16BE(ETHERTYPE_WOL, 12);
  payload.copy(frame, ETHER_HEADER);
  return frame;
}

/** Build an ARP frame (tests, benchmarks and the flood generator use it). */
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
  (options.destinationMac ?? Buffer.alloc(6, 0xff)).copy(frame, 0);
  options.sourceMac.copy(frame, 6);
  frame.writeUInt16BE(ETHERTYPE_ARP, 12);
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
