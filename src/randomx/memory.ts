/** What memory the machine can give: available bytes (cgroup-aware) and free huge pages. */
import fs from 'node:fs';
import path from 'node:path';
import { VigilError } from '../core/errors';

/** Headroom kept free beside a dataset, so the daemon is not pushed into the OOM killer. */
export const MEMORY_HEADROOM_BYTES = 128 * 1024 * 1024;

const mib = (bytes: number): number => bytes / 2 ** 20;

/** Bytes this process may still allocate: MemAvailable, bounded by a cgroup v2 limit if any. */
export function availableMemoryBytes(): number {
  let available = Infinity;
  try {
    const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
    const match = /^MemAvailable:\s+(\d+)\s*kB/m.exec(meminfo);
    if (match) available = Number(match[1]) * 1024;
  } catch {
    // no /proc: trust the allocator alone
  }
  try {
    const line = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    if (line) {
      const dir = path.join('/sys/fs/cgroup', line.slice(3));
      const max = fs.readFileSync(path.join(dir, 'memory.max'), 'utf8').trim();
      if (max !== 'max') {
        const current = Number(fs.readFileSync(path.join(dir, 'memory.current'), 'utf8'));
        available = Math.min(available, Number(max) - current);
      }
    }
  } catch {
    // no cgroup v2 memory controller: MemAvailable is the bound
  }
  return available;
}

/** Whether `bytes` more can be allocated with the headroom left over. */
export function hasRoomFor(bytes: number): boolean {
  return availableMemoryBytes() >= bytes + MEMORY_HEADROOM_BYTES;
}

/**
 * Refuse a fast-mode dataset before allocating it when the memory is not there, with
 * `pendingBytes` allocated but not yet touched (so not yet counted) beside it.
 */
export function requireRoomForDataset(bytes: number, pendingBytes = 0): void {
  const available = availableMemoryBytes();
  if (available < bytes + pendingBytes + MEMORY_HEADROOM_BYTES) {
    throw new VigilError(
      'Failed',
      `fast mode needs ${Math.ceil(mib(bytes))} MiB for its dataset but only ` +
        `${Math.floor(mib(available))} MiB are available; use light mode`,
    );
  }
}

/** Free huge pages of the default size, in bytes (0 when none are reserved). */
export function freeHugePageBytes(meminfo = '/proc/meminfo'): number {
  let text: string;
  try {
    text = fs.readFileSync(meminfo, 'utf8');
  } catch {
    return 0;
  }
  const free = /^HugePages_Free:\s+(\d+)/m.exec(text);
  const size = /^Hugepagesize:\s+(\d+)\s*kB/m.exec(text);
  if (!free || !size) return 0;
  return Number(free[1]) * Number(size[1]) * 1024;
}
