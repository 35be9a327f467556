import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Lan } from '../helpers/netns';
import { until } from './wait';

/**
 * The witness of the network tests and benchmarks: tcpdump on a node's wire, the pcap file it
 * writes, and what is found in the frames (magic packets, TCP SYNs).
 */

/** One record of a classic pcap file (what `tcpdump -w` writes). */
export interface PcapRecord {
  /** Capture time in microseconds since the epoch. */
  readonly timeUs: number;
  readonly data: Buffer;
}

/** Read a classic little- or big-endian, micro- or nanosecond pcap file. */
export function readPcap(file: string): PcapRecord[] {
  const buf = fs.readFileSync(file);
  if (buf.length < 24) return [];
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const nano = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
  if (!le && magic !== 0xd4c3b2a1 && magic !== 0x4d3cb2a1)
    throw new Error(`${file}: not a pcap file`);
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const out: PcapRecord[] = [];
  let offset = 24;
  while (offset + 16 <= buf.length) {
    const sec = u32(offset);
    const frac = u32(offset + 4);
    const length = u32(offset + 8);
    if (offset + 16 + length > buf.length) break; // record still being written
    out.push({
      timeUs: sec * 1e6 + (nano ? frac / 1000 : frac),
      data: buf.subarray(offset + 16, offset + 16 + length),
    });
    offset += 16 + length;
  }
  return out;
}

/** The magic packet payload of a captured frame (UDP port 9 or EtherType 0x0842), if any. */
export function magicPayload(frame: Buffer): { mac: string; via: 'udp' | 'ethernet' } | undefined {
  if (frame.length < 14) return undefined;
  const type = frame.readUInt16BE(12);
  let payload: Buffer | undefined;
  let via: 'udp' | 'ethernet' = 'udp';
  if (type === 0x0842) {
    payload = frame.subarray(14);
    via = 'ethernet';
  } else if (type === 0x0800 && frame.length >= 34 && frame[23] === 17) {
    const ihl = (frame[14] & 0x0f) * 4;
    const udp = 14 + ihl;
    if (frame.length >= udp + 8 && frame.readUInt16BE(udp + 2) === 9) {
      payload = frame.subarray(udp + 8, udp + frame.readUInt16BE(udp + 4));
    }
  }
  if (!payload || payload.length < 102) return undefined;
  if (!payload.subarray(0, 6).equals(Buffer.alloc(6, 0xff))) return undefined;
  const mac = payload.subarray(6, 12);
  for (let i = 1; i < 16; i++) {
    if (!payload.subarray(6 + i * 6, 12 + i * 6).equals(mac)) return undefined;
  }
  return { mac: [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':'), via };
}

/**
 * A TCP SYN (ACK clear: someone opening a connection) to `port`, over IPv4 or IPv6 (without
 * extension headers), or only over `family`.
 */
export function isTcpSyn(frame: Buffer, port: number, family?: 4 | 6): boolean {
  const type = frame.readUInt16BE(12);
  const v4 = type === 0x0800;
  if (family === 4 ? !v4 : family === 6 ? type !== 0x86dd : !v4 && type !== 0x86dd) return false;
  const tcp = v4 ? 14 + (frame[14] & 0x0f) * 4 : 54;
  const protocol = v4 ? frame[23] : frame[20];
  return (
    protocol === 6 &&
    frame.length >= tcp + 14 &&
    frame.readUInt16BE(tcp + 2) === port &&
    (frame[tcp + 13] & 0x12) === 0x02
  );
}

/**
 * tcpdump on a node's eth0 writing `file` (every frame at once: immediate mode, unbuffered),
 * resolved once it listens; it is killed with the LAN.
 */
export async function capture(
  lan: Lan,
  node: string,
  file: string,
  filter?: string,
): Promise<ChildProcess> {
  const args = ['-i', 'eth0', '-n', '--immediate-mode', '-U', '-w', file];
  const dump = lan.spawn(node, 'tcpdump', filter ? [...args, filter] : args);
  let err = '';
  dump.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  await until(
    () => err.includes('listening on'),
    10000,
    () => `tcpdump: ${err}`,
  );
  return dump;
}
