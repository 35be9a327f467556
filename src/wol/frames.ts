import { formatMac, isMulticast6, isUnicastMac, isUnspecified6 } from './addresses';
import { icmp6Checksum } from './packets';

/**
 * Defensive parsing of captured Ethernet frames. Every offset is bounds-checked against the
 * captured length: a frame from the wire is untrusted input. Addresses inside a parsed frame
 * are views of the capture buffer, which the next frame overwrites: copy what you keep.
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_WOL = 0x0842;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHER_HEADER = 14;
export const ARP_IPV4_LENGTH = 28;
export const IPV6_HEADER = 40;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMP6 = 58;
export const ICMP6_ECHO_REPLY = 129;
export const ND_NEIGHBOR_SOLICIT = 135;
export const ND_NEIGHBOR_ADVERT = 136;
/** The IPv6 extension headers walked to find the transport (hop-by-hop, routing, fragment, destination, AH). */
const EXTENSION_HEADERS = new Set([0, 43, 44, 51, 60]);
const MAX_EXTENSION_HEADERS = 8;

export interface ArpFrame {
  readonly kind: 'arp';
  readonly sourceMac: string;
  readonly op: 'request' | 'reply';
  readonly senderMac: string;
  /** IPv4 addresses as unsigned 32-bit numbers. */
  readonly senderIp: number;
  readonly targetIp: number;
}

/** A Neighbor Solicitation or Advertisement that passed RFC 4861's validity checks. */
export interface NdpFrame {
  readonly kind: 'ndp';
  readonly type: 'ns' | 'na';
  readonly sourceMac: string;
  readonly destinationMac: string;
  readonly sourceIp: Buffer;
  readonly destinationIp: Buffer;
  readonly target: Buffer;
  /** NS: the Source Link-Layer Address option; NA: the Target Link-Layer Address option. */
  readonly linkAddress: string | undefined;
  readonly solicited: boolean;
  readonly override: boolean;
}

/** An IPv4 or IPv6 packet; the transport fields are set for a TCP segment or UDP datagram. */
export interface IpFrame {
  readonly kind: 'ip';
  readonly family: 4 | 6;
  readonly sourceMac: string;
  readonly destinationMac: string;
  /** IPv4 as a 32-bit number, IPv6 as 16 bytes. */
  readonly sourceIp: number | Buffer;
  readonly destinationIp: number | Buffer;
  readonly hopLimit: number;
  /** `tcp`/`udp` with ports; `icmp6` with the message type; `other` (or a later fragment). */
  readonly transport: 'tcp' | 'udp' | 'icmp6' | 'other';
  readonly sourcePort: number;
  readonly destinationPort: number;
  /** TCP: SYN set and ACK clear, i.e. someone opening a connection. */
  readonly syn: boolean;
  readonly icmpType: number;
}

export type Frame =
  | ArpFrame
  | NdpFrame
  | IpFrame
  | { readonly kind: 'other'; readonly sourceMac: string }
  /** Dropped; `sourceMac` when the Ethernet header was sound (any frame from a host is life). */
  | { readonly kind: 'malformed'; readonly reason: string; readonly sourceMac?: string };

const malformed = (reason: string): Frame => ({ kind: 'malformed', reason });

/** Parse the first `length` bytes of `buf` (the capture buffer is reused between frames). */
export function parseFrame(buf: Buffer, length: number = buf.length, truncated = false): Frame {
  if (truncated) return malformed('truncated by capture');
  const end = Math.min(length, buf.length);
  if (end < ETHER_HEADER) return malformed('shorter than an Ethernet header');
  if (!isUnicastMac(buf, 6)) return malformed('source MAC is not unicast');
  const sourceMac = formatMac(buf, 6);
  let offset = 12;
  let ethertype = buf.readUInt16BE(offset);
  if (ethertype === ETHERTYPE_VLAN) {
    if (end < ETHER_HEADER + 4) return malformed('truncated VLAN tag');
    offset += 4;
    ethertype = buf.readUInt16BE(offset);
  }
  offset += 2;
  let frame: Frame;
  switch (ethertype) {
    case ETHERTYPE_ARP:
      frame = parseArp(buf, offset, end, sourceMac);
      break;
    case ETHERTYPE_IPV6:
      frame = parseIpv6Packet(buf, offset, end, sourceMac);
      break;
    case ETHERTYPE_IPV4:
      frame = parseIpv4Packet(buf, offset, end, sourceMac);
      break;
    default:
      return { kind: 'other', sourceMac };
  }
  return frame.kind === 'malformed' ? { ...frame, sourceMac } : frame;
}

function parseArp(buf: Buffer, offset: number, end: number, sourceMac: string): Frame {
  if (end - offset < 8) return malformed('truncated ARP header');
  const htype = buf.readUInt16BE(offset);
  const ptype = buf.readUInt16BE(offset + 2);
  const hlen = buf[offset + 4];
  const plen = buf[offset + 5];
  const op = buf.readUInt16BE(offset + 6);
  if (htype !== 1 || ptype !== ETHERTYPE_IPV4 || hlen !== 6 || plen !== 4) {
    return malformed('ARP is not Ethernet/IPv4');
  }
  if (op !== 1 && op !== 2) return malformed(`unknown ARP operation ${op}`);
  if (end - offset < ARP_IPV4_LENGTH) return malformed('truncated ARP body');
  if (!isUnicastMac(buf, offset + 8)) return malformed('ARP sender MAC is not unicast');
  return {
    kind: 'arp',
    sourceMac,
    op: op === 1 ? 'request' : 'reply',
    senderMac: formatMac(buf, offset + 8),
    senderIp: buf.readUInt32BE(offset + 14),
    targetIp: buf.readUInt32BE(offset + 24),
  };
}

interface Transport {
  transport: IpFrame['transport'];
  sourcePort: number;
  destinationPort: number;
  syn: boolean;
  icmpType: number;
}

const NO_TRANSPORT: Transport = {
  transport: 'other',
  sourcePort: 0,
  destinationPort: 0,
  syn: false,
  icmpType: 0,
};

/** TCP or UDP ports (and TCP's SYN) at `offset`; undefined when the header is cut short. */
function parseTransport(
  buf: Buffer,
  protocol: number,
  offset: number,
  end: number,
): Transport | undefined {
  const tcp = protocol === PROTO_TCP;
  if (!tcp && protocol !== PROTO_UDP) return NO_TRANSPORT;
  if (end - offset < (tcp ? 20 : 8)) return undefined;
  if (tcp && buf[offset + 12] >> 4 < 5) return undefined;
  const flags = buf[offset + 13];
  return {
    transport: tcp ? 'tcp' : 'udp',
    sourcePort: buf.readUInt16BE(offset),
    destinationPort: buf.readUInt16BE(offset + 2),
    syn: tcp && (flags & 0x02) !== 0 && (flags & 0x10) === 0,
    icmpType: 0,
  };
}

function parseIpv4Packet(buf: Buffer, offset: number, end: number, sourceMac: string): Frame {
  if (end - offset < 20) return malformed('truncated IPv4 header');
  const headerLength = (buf[offset] & 0x0f) * 4;
  if (buf[offset] >> 4 !== 4 || headerLength < 20) return malformed('not an IPv4 header');
  const totalLength = buf.readUInt16BE(offset + 2);
  if (totalLength < headerLength || offset + totalLength > end) {
    return malformed('truncated IPv4 packet');
  }
  const packetEnd = offset + totalLength;
  const laterFragment = (buf.readUInt16BE(offset + 6) & 0x1fff) !== 0;
  const protocol = buf[offset + 9];
  const transport = laterFragment
    ? NO_TRANSPORT
    : parseTransport(buf, protocol, offset + headerLength, packetEnd);
  if (!transport) return malformed('truncated TCP/UDP header');
  return {
    kind: 'ip',
    family: 4,
    sourceMac,
    destinationMac: formatMac(buf, 0),
    sourceIp: buf.readUInt32BE(offset + 12),
    destinationIp: buf.readUInt32BE(offset + 16),
    hopLimit: buf[offset + 8],
    ...transport,
  };
}

function parseIpv6Packet(buf: Buffer, offset: number, end: number, sourceMac: string): Frame {
  if (end - offset < IPV6_HEADER) return malformed('truncated IPv6 header');
  if (buf[offset] >> 4 !== 6) return malformed('not an IPv6 header');
  const packetEnd = offset + IPV6_HEADER + buf.readUInt16BE(offset + 4);
  if (packetEnd > end) return malformed('truncated IPv6 packet');
  const hopLimit = buf[offset + 7];
  const sourceIp = buf.subarray(offset + 8, offset + 24);
  const destinationIp = buf.subarray(offset + 24, offset + 40);
  let next = buf[offset + 6];
  let at = offset + IPV6_HEADER;
  let laterFragment = false;
  for (let n = 0; EXTENSION_HEADERS.has(next); n++) {
    if (n === MAX_EXTENSION_HEADERS) return malformed('too many IPv6 extension headers');
    if (packetEnd - at < 8) return malformed('truncated IPv6 extension header');
    let size: number;
    if (next === 44) {
      size = 8;
      laterFragment = (buf.readUInt16BE(at + 2) & 0xfff8) !== 0;
    } else if (next === 51) {
      size = (buf[at + 1] + 2) * 4;
    } else {
      size = (buf[at + 1] + 1) * 8;
    }
    if (packetEnd - at < size) return malformed('truncated IPv6 extension header');
    next = buf[at];
    at += size;
    if (laterFragment) break;
  }
  const destinationMac = formatMac(buf, 0);
  let transport: Transport | undefined;
  if (laterFragment) {
    transport = NO_TRANSPORT;
  } else if (next === PROTO_ICMP6) {
    if (packetEnd - at < 4) return malformed('truncated ICMPv6 header');
    const type = buf[at];
    if (type === ND_NEIGHBOR_SOLICIT || type === ND_NEIGHBOR_ADVERT) {
      return parseNdp(buf, offset, at, packetEnd, {
        sourceMac,
        destinationMac,
        sourceIp,
        destinationIp,
      });
    }
    transport = { ...NO_TRANSPORT, transport: 'icmp6', icmpType: type };
  } else {
    transport = parseTransport(buf, next, at, packetEnd);
  }
  if (!transport) return malformed('truncated TCP/UDP header');
  return {
    kind: 'ip',
    family: 6,
    sourceMac,
    destinationMac,
    sourceIp,
    destinationIp,
    hopLimit,
    ...transport,
  };
}

/** RFC 4861 7.1.1 and 7.1.2: what a node must check before it believes an NS or NA. */
function parseNdp(
  buf: Buffer,
  ip: number,
  at: number,
  packetEnd: number,
  // What parseIpv6Packet already took from the headers.
  headers: Pick<NdpFrame, 'sourceMac' | 'destinationMac' | 'sourceIp' | 'destinationIp'>,
): Frame {
  const type = buf[at] === ND_NEIGHBOR_SOLICIT ? 'ns' : 'na';
  if (packetEnd - at < 24) return malformed(`truncated neighbor ${type}`);
  if (at !== ip + IPV6_HEADER) return malformed('neighbor discovery behind extension headers');
  if (buf[ip + 7] !== 255) return malformed('neighbor discovery with hop limit below 255');
  if (buf[at + 1] !== 0) return malformed('neighbor discovery with a nonzero code');
  if (icmp6Checksum(buf, ip + 8, ip + 24, at, packetEnd - at) !== 0) {
    return malformed('bad ICMPv6 checksum');
  }
  const { sourceIp, destinationIp } = headers;
  const target = buf.subarray(at + 8, at + 24);
  if (isMulticast6(target)) return malformed('neighbor discovery for a multicast target');
  let linkAddress: string | undefined;
  const wanted = type === 'ns' ? 1 : 2;
  for (let o = at + 24; o < packetEnd;) {
    if (packetEnd - o < 2) return malformed('truncated neighbor discovery option');
    const size = buf[o + 1] * 8;
    if (size === 0) return malformed('neighbor discovery option of length 0');
    if (packetEnd - o < size) return malformed('truncated neighbor discovery option');
    if (buf[o] === wanted && size === 8 && linkAddress === undefined) {
      linkAddress = formatMac(buf, o + 2);
    }
    o += size;
  }
  const flags = buf[at + 4];
  const solicited = type === 'na' && (flags & 0x40) !== 0;
  if (type === 'ns' && isUnspecified6(sourceIp)) {
    if (linkAddress !== undefined) return malformed('DAD probe with a source link-layer address');
    if (!isMulticast6(destinationIp)) return malformed('DAD probe not sent to a multicast group');
  }
  if (type === 'na' && solicited && isMulticast6(destinationIp)) {
    return malformed('solicited advertisement sent to a multicast group');
  }
  return {
    kind: 'ndp',
    type,
    ...headers,
    target,
    linkAddress,
    solicited,
    override: type === 'na' && (flags & 0x20) !== 0,
  };
}
