/**
 * Frames the tests put on the wire or feed to the watcher: IPv4/IPv6 TCP and UDP packets
 * (vigil itself never sends these), plus short forms of the NDP frames vigil does send.
 */
import { parseIpv6, parseMac, solicitedNode } from '../../src/wol/addresses';
import { icmp6Checksum, multicastMac6, ndpFrame } from '../../src/wol/packets';

export const mac = (text: string): Buffer => parseMac(text)!;
export const ip6 = (text: string): Buffer => parseIpv6(text)!;

const UNSPECIFIED = Buffer.alloc(16);

/** A TCP segment (20-byte header) or UDP datagram inside IPv4 or IPv6, inside Ethernet. */
export function ipFrame(options: {
  sourceMac: Buffer;
  destinationMac: Buffer;
  /** Dotted quad or IPv6 text; both of one family. */
  source: string;
  destination: string;
  protocol: 'tcp' | 'udp';
  sourcePort?: number;
  destinationPort: number;
  /** TCP flags byte (default SYN). */
  flags?: number;
  hopLimit?: number;
}): Buffer {
  const v6 = options.source.includes(':');
  const transport = Buffer.alloc(options.protocol === 'tcp' ? 20 : 8);
  transport.writeUInt16BE(options.sourcePort ?? 40000, 0);
  transport.writeUInt16BE(options.destinationPort, 2);
  if (options.protocol === 'tcp') {
    transport[12] = 5 << 4;
    transport[13] = options.flags ?? 0x02;
    transport.writeUInt16BE(64240, 14);
  } else {
    transport.writeUInt16BE(8, 4);
  }
  const ether = Buffer.alloc(14);
  options.destinationMac.copy(ether, 0);
  options.sourceMac.copy(ether, 6);
  const proto = options.protocol === 'tcp' ? 6 : 17;
  let header: Buffer;
  if (v6) {
    ether.writeUInt16BE(0x86dd, 12);
    header = Buffer.alloc(40);
    header.writeUInt32BE(0x60000000, 0);
    header.writeUInt16BE(transport.length, 4);
    header[6] = proto;
    header[7] = options.hopLimit ?? 64;
    ip6(options.source).copy(header, 8);
    ip6(options.destination).copy(header, 24);
  } else {
    ether.writeUInt16BE(0x0800, 12);
    header = Buffer.alloc(20);
    header[0] = 0x45;
    header.writeUInt16BE(20 + transport.length, 2);
    header[8] = options.hopLimit ?? 64;
    header[9] = proto;
    Buffer.from(options.source.split('.').map(Number)).copy(header, 12);
    Buffer.from(options.destination.split('.').map(Number)).copy(header, 16);
  }
  return Buffer.concat([ether, header, transport]);
}

/** A Neighbor Solicitation for `target` (from `source`; `::` makes it a DAD probe). */
export function solicitation(options: {
  sourceMac: Buffer;
  source: string;
  target: string;
  /** Unicast to this MAC and address instead of the solicited-node group. */
  to?: { mac: Buffer; ip: string };
}): Buffer {
  const target = ip6(options.target);
  const group = solicitedNode(target);
  const source = ip6(options.source);
  const dad = source.equals(UNSPECIFIED);
  return ndpFrame({
    type: 'ns',
    sourceMac: options.sourceMac,
    destinationMac: options.to?.mac ?? multicastMac6(group),
    sourceIp: source,
    destinationIp: options.to ? ip6(options.to.ip) : group,
    target,
    linkAddress: dad ? undefined : options.sourceMac,
  });
}

/** An unsolicited Neighbor Advertisement (Override) of `target` at `linkMac`, to all nodes. */
export function advertisement(options: {
  sourceMac: Buffer;
  target: string;
  linkMac?: Buffer;
}): Buffer {
  const allNodes = ip6('ff02::1');
  return ndpFrame({
    type: 'na',
    sourceMac: options.sourceMac,
    destinationMac: multicastMac6(allNodes),
    sourceIp: ip6(options.target),
    destinationIp: allNodes,
    target: ip6(options.target),
    linkAddress: options.linkMac ?? options.sourceMac,
    override: true,
  });
}

/** Recompute the ICMPv6 checksum of an NDP frame built by ndpFrame (after editing it). */
export function fixIcmp6Checksum(frame: Buffer): Buffer {
  const length = frame.readUInt16BE(18);
  frame.writeUInt16BE(0, 56);
  frame.writeUInt16BE(icmp6Checksum(frame, 22, 38, 54, length), 56);
  return frame;
}

/**
 * An MLDv1 general query (RFC 2710) from a router's link-local address: hop limit 1, Router
 * Alert, a 100 ms maximum response delay. A switch that snoops MLD starts filtering once it
 * hears a querier, and every node answers with reports of its groups.
 */
export function mldQuery(sourceMac: Buffer, source: string): Buffer {
  const frame = Buffer.alloc(14 + 40 + 8 + 24);
  Buffer.from('333300000001', 'hex').copy(frame, 0);
  sourceMac.copy(frame, 6);
  frame.writeUInt16BE(0x86dd, 12);
  frame.writeUInt32BE(0x60000000, 14);
  frame.writeUInt16BE(8 + 24, 18);
  frame[20] = 0; // hop-by-hop options
  frame[21] = 1;
  ip6(source).copy(frame, 22);
  ip6('ff02::1').copy(frame, 38);
  Buffer.from([58, 0, 5, 2, 0, 0, 1, 0]).copy(frame, 54); // Router Alert (MLD), PadN
  frame[62] = 130;
  frame.writeUInt16BE(100, 66);
  frame.writeUInt16BE(icmp6Checksum(frame, 22, 38, 62, 24), 64);
  return frame;
}
