import fs from 'node:fs';
import os from 'node:os';
import { invalidArgument } from '../core/errors';

/**
 * Address and name validation for the Wake-on-LAN watcher. Everything that comes from a
 * config file or a D-Bus caller passes through here and fails with InvalidArgument.
 */

const MAC_PATTERNS = [
  /^([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})$/i,
  /^([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})$/i,
  /^([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i,
];

/** Parse `aa:bb:cc:dd:ee:ff` (also `-` separated, Cisco dotted or bare hex) to 6 bytes, or undefined. */
export function parseMac(text: string): Buffer | undefined {
  const trimmed = text.trim();
  for (const pattern of MAC_PATTERNS) {
    const m = pattern.exec(trimmed);
    if (m) return Buffer.from(m.slice(1, 7).map((h) => parseInt(h, 16)));
  }
  return undefined;
}

/** Two lower-case hex digits per byte value: every captured frame's MACs are written out. */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

export function formatMac(bytes: Buffer, offset = 0): string {
  const b = (i: number): string => HEX[bytes[offset + i]];
  return `${b(0)}:${b(1)}:${b(2)}:${b(3)}:${b(4)}:${b(5)}`;
}

/** A MAC a machine can own: not all-zero, not multicast/broadcast (low bit of the first byte). */
export function isUnicastMac(bytes: Buffer, offset = 0): boolean {
  if ((bytes[offset] & 1) !== 0) return false;
  for (let i = offset; i < offset + 6; i++) if (bytes[i] !== 0) return true;
  return false;
}

/** Normalized (lower-case, colon-separated) unicast MAC, or InvalidArgument. */
export function normalizeMac(text: string, what = 'MAC address'): string {
  const bytes = parseMac(text);
  if (!bytes) throw invalidArgument(`invalid ${what} "${text}"`);
  if (!isUnicastMac(bytes)) {
    throw invalidArgument(`${what} "${text}" is not a unicast address of a machine`);
  }
  return formatMac(bytes);
}

/** Dotted-quad IPv4 to an unsigned 32-bit number, or undefined (no shorthand forms). */
export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i].length > 1 && m[i].startsWith('0'))) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** A watched host's address: a unicast IPv4 address (not 0.0.0.0, multicast or broadcast). */
export function normalizeHostIp(text: string): string {
  const value = parseIpv4(text);
  if (value === undefined) throw invalidArgument(`invalid IPv4 address "${text}"`);
  const first = value >>> 24;
  if (value === 0 || value === 0xffffffff || first === 0 || first >= 224 || first === 127) {
    throw invalidArgument(`IPv4 address "${text}" cannot belong to a machine on the LAN`);
  }
  return formatIpv4(value);
}

/**
 * IPv6 text (RFC 4291: groups, one `::`, an IPv4 tail) to 16 bytes, or undefined. No zone
 * (`%eth0`): a host's addresses belong to its interface already.
 */
export function parseIpv6(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (trimmed.length > 45 || !/^[0-9a-fA-F:.]+$/.test(trimmed)) return undefined;
  const halves = trimmed.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return bytes;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of zero groups as `::`. */
export function formatIpv6(bytes: Buffer, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(bytes.readUInt16BE(offset + i * 2));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** The map key of an IPv6 address: its 16 bytes in hex (cheap to take from a frame). */
export function ip6Key(bytes: Buffer, offset = 0): string {
  return bytes.toString('hex', offset, offset + 16);
}

export const isLinkLocal6 = (bytes: Buffer, offset = 0): boolean =>
  bytes[offset] === 0xfe && (bytes[offset + 1] & 0xc0) === 0x80;
export const isMulticast6 = (bytes: Buffer, offset = 0): boolean => bytes[offset] === 0xff;
export function isUnspecified6(bytes: Buffer, offset = 0): boolean {
  for (let i = offset; i < offset + 16; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** An address a machine's interface can hold: not `::`, loopback, multicast or IPv4-mapped. */
export function isUnicast6(bytes: Buffer, offset = 0): boolean {
  if (isMulticast6(bytes, offset)) return false;
  const first10 = bytes.subarray(offset, offset + 10);
  if (first10.every((b) => b === 0)) {
    // ::, ::1, ::ffff:a.b.c.d and the deprecated IPv4-compatible addresses.
    return false;
  }
  return true;
}

/** A watched host's IPv6 address (canonical text), or InvalidArgument. */
export function normalizeHostIp6(text: string): string {
  const bytes = parseIpv6(text);
  if (!bytes) throw invalidArgument(`invalid IPv6 address "${text}"`);
  if (!isUnicast6(bytes)) {
    throw invalidArgument(`IPv6 address "${text}" cannot belong to a machine on the LAN`);
  }
  return formatIpv6(bytes);
}

/** The solicited-node multicast group of an address (RFC 4291 2.7.1): ff02::1:ffXX:XXXX. */
export function solicitedNode(bytes: Buffer, offset = 0): Buffer {
  const group = Buffer.from('ff0200000000000000000001ff000000', 'hex');
  bytes.copy(group, 13, offset + 13, offset + 16);
  return group;
}

/** One `OnlyFrom`/`IgnoreFrom` entry: an IPv4 or IPv6 address or CIDR block. */
export type AddressRange =
  | { readonly family: 4; readonly text: string; readonly network: number; readonly mask: number }
  | {
      readonly family: 6;
      readonly text: string;
      /** The network's 16 bytes (host bits zero) and its prefix length. */
      readonly network6: Buffer;
      readonly prefix: number;
    };

/** An address as the rules compare it: a 32-bit number (IPv4) or 16 bytes (IPv6). */
export type IpValue = number | Buffer;

export function parseAddressRange(text: string): AddressRange {
  const trimmed = text.trim();
  const [addr, bits, extra] = trimmed.split('/');
  if (addr?.includes(':')) {
    const bytes = parseIpv6(addr);
    const prefix = bits === undefined ? 128 : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (!bytes || extra !== undefined || !(prefix >= 0 && prefix <= 128)) {
      throw invalidArgument(`invalid requester address "${text}" (expected an address or CIDR)`);
    }
    const network6 = maskIpv6(bytes, prefix);
    const base = formatIpv6(network6);
    return { family: 6, text: prefix === 128 ? base : `${base}/${prefix}`, network6, prefix };
  }
  const value = parseIpv4(addr ?? '');
  const prefix = bits === undefined ? 32 : /^\d{1,2}$/.test(bits) ? Number(bits) : NaN;
  if (value === undefined || extra !== undefined || !(prefix >= 0 && prefix <= 32)) {
    throw invalidArgument(`invalid requester address "${text}" (expected an address or CIDR)`);
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const network = (value & mask) >>> 0;
  return {
    family: 4,
    text: prefix === 32 ? formatIpv4(network) : `${formatIpv4(network)}/${prefix}`,
    network,
    mask,
  };
}

/** Whether two IPv6 addresses share their first `prefix` bits (are on one prefix). */
export function samePrefix(a: Buffer, b: Buffer, prefix: number): boolean {
  for (let bit = 0; bit < prefix; bit += 8) {
    const i = bit >> 3;
    const mask = (0xff << (8 - Math.min(8, prefix - bit))) & 0xff;
    if ((a[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}

function maskIpv6(bytes: Buffer, prefix: number): Buffer {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = bytes[i] & ((0xff << (8 - bitsHere)) & 0xff);
  }
  return out;
}

/** `OnlyFrom` from a config value or CLI: separated by commas and/or whitespace. */
export function parseAddressList(text: string): AddressRange[] {
  return splitList(text).map(parseAddressRange);
}

/** A list value from a config file or a single D-Bus string: commas and/or whitespace. */
export function splitList(text: string): string[] {
  return text.split(/[\s,]+/).filter((s) => s !== '');
}

/** Whether `ip` (IPv4 as a number, IPv6 as 16 bytes) is inside `range`; families never mix. */
export function rangeContains(range: AddressRange, ip: IpValue): boolean {
  if (typeof ip === 'number') {
    return range.family === 4 && (ip & range.mask) >>> 0 === range.network;
  }
  if (range.family !== 6 || ip.length < 16) return false;
  return maskIpv6(ip, range.prefix).equals(range.network6);
}

export const anyRangeContains = (ranges: readonly AddressRange[], ip: IpValue): boolean =>
  ranges.some((r) => rangeContains(r, ip));

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Host names are the names of machines: letters, digits, `.`, `_`, `-`, at most 63. */
export function validateHostName(name: string): string {
  if (!HOST_NAME.test(name)) {
    throw invalidArgument(
      `invalid host name "${name}" (1-63 of A-Z a-z 0-9 . _ -, starting with a letter or digit)`,
    );
  }
  return name;
}

const INTERFACE_NAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** A network interface name (IFNAMSIZ) that exists on this machine (in this namespace). */
export function validateInterface(name: string, sysClassNet = '/sys/class/net'): string {
  if (!INTERFACE_NAME.test(name) || name === '.' || name === '..') {
    throw invalidArgument(`invalid interface name "${name}"`);
  }
  if (!fs.existsSync(`${sysClassNet}/${name}`)) {
    throw invalidArgument(`no network interface "${name}" on this machine`);
  }
  return name;
}

/** The IPv4 configuration of one interface, as the capture and the sender need it. */
export interface InterfaceAddress {
  readonly address: string;
  readonly broadcast: string;
  readonly network: number;
  readonly mask: number;
}

export function interfaceAddresses(name: string): InterfaceAddress[] {
  const entries = os.networkInterfaces()[name] ?? [];
  const out: InterfaceAddress[] = [];
  for (const e of entries) {
    if (e.family !== 'IPv4') continue;
    const addr = parseIpv4(e.address);
    const mask = parseIpv4(e.netmask);
    if (addr === undefined || mask === undefined) continue;
    out.push({
      address: e.address,
      broadcast: formatIpv4((addr | ~mask) >>> 0),
      network: (addr & mask) >>> 0,
      mask,
    });
  }
  return out;
}

/** The interface whose IPv4 subnet holds `ip`, for hosts configured without one. */
export function interfaceForIp(ip: string): string | undefined {
  const value = parseIpv4(ip);
  if (value === undefined) return undefined;
  for (const name of Object.keys(os.networkInterfaces())) {
    if (name === 'lo') continue;
    for (const a of interfaceAddresses(name)) {
      if (a.mask !== 0xffffffff && (value & a.mask) >>> 0 === a.network) return name;
    }
  }
  return undefined;
}

/** Whether `ip` is on a subnet directly attached to `iface` (so an echo to it stays on that LAN). */
export function isOnLink(iface: string, ip: string): boolean {
  const value = parseIpv4(ip);
  if (value === undefined) return false;
  return interfaceAddresses(iface).some((a) => (value & a.mask) >>> 0 === a.network);
}
