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

export function formatMac(bytes: Buffer, offset = 0): string {
  let out = '';
  for (let i = 0; i < 6; i++) {
    const b = bytes[offset + i];
    out += (i ? ':' : '') + (b < 16 ? '0' : '') + b.toString(16);
  }
  return out;
}

/** A MAC a machine can own: not all-zero, not multicast/broadcast (low bit of the first byte). */
export function isUnicastMac(bytes: Buffer): boolean {
  return (bytes[0] & 1) === 0 && bytes.some((b) => b !== 0);
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

/** One `OnlyFrom` entry: an address or a CIDR block. */
export interface AddressRange {
  readonly text: string;
  readonly network: number;
  readonly mask: number;
}

export function parseAddressRange(text: string): AddressRange {
  const trimmed = text.trim();
  const [addr, bits, extra] = trimmed.split('/');
  const value = parseIpv4(addr ?? '');
  const prefix = bits === undefined ? 32 : /^\d{1,2}$/.test(bits) ? Number(bits) : NaN;
  if (value === undefined || extra !== undefined || !(prefix >= 0 && prefix <= 32)) {
    throw invalidArgument(`invalid requester address "${text}" (expected an IPv4 address or CIDR)`);
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const network = (value & mask) >>> 0;
  return {
    text: prefix === 32 ? formatIpv4(network) : `${formatIpv4(network)}/${prefix}`,
    network,
    mask,
  };
}

/** `OnlyFrom` from a config value or CLI: separated by commas and/or whitespace. */
export function parseAddressList(text: string): AddressRange[] {
  return text
    .split(/[\s,]+/)
    .filter((s) => s !== '')
    .map(parseAddressRange);
}

export function rangeContains(range: AddressRange, ip: number): boolean {
  return (ip & range.mask) >>> 0 === range.network;
}

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
