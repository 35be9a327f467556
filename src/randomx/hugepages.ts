/**
 * Huge pages without reserved ones: transparent huge pages (THP) asked for with
 * madvise(MADV_HUGEPAGE) on memory before it is filled, and how much of a region the kernel
 * really backs with huge pages, read from /proc/self/smaps.
 */
import fs from 'node:fs';
import { libc } from './libc';
import type { Address } from './native';

const HUGE_PAGE = 2 * 1024 * 1024;
const MADV_HUGEPAGE = 14;
const THP_SETTING = '/sys/kernel/mm/transparent_hugepage/enabled';

export type ThpMode = 'always' | 'madvise' | 'never';

/** The kernel's THP setting; `never` also when the kernel has no THP at all. */
export function thpMode(file = THP_SETTING): ThpMode {
  try {
    const chosen = /\[(\w+)\]/.exec(fs.readFileSync(file, 'utf8'))?.[1];
    if (chosen === 'always' || chosen === 'madvise') return chosen;
  } catch {
    // no THP support in this kernel
  }
  return 'never';
}

/**
 * Ask for transparent huge pages on the 2 MiB-aligned inside of [start, start + length), the
 * only part the kernel can back with them. Returns the bytes advised (0 if refused).
 */
export function adviseHugePages(start: Address, length: number): number {
  const from = Math.ceil(start / HUGE_PAGE) * HUGE_PAGE;
  const to = Math.floor((start + length) / HUGE_PAGE) * HUGE_PAGE;
  if (to <= from) return 0;
  return libc().madvise(from, to - from, MADV_HUGEPAGE) === 0 ? to - from : 0;
}

/**
 * The share of [start, start + length) backed by huge pages: transparent ones
 * (`AnonHugePages`) or reserved ones (a hugetlb mapping), from the mappings lying inside it.
 */
export function hugePageCoverage(
  start: Address,
  length: number,
  smaps = '/proc/self/smaps',
): number {
  if (length <= 0) return 0;
  let text: string;
  try {
    text = fs.readFileSync(smaps, 'utf8');
  } catch {
    return 0;
  }
  const end = start + length;
  let huge = 0;
  let inside = false;
  let size = 0;
  for (const line of text.split('\n')) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range) {
      const from = parseInt(range[1], 16);
      const to = parseInt(range[2], 16);
      // Mappings within the region, give or take the unaligned edges the advice left out.
      inside = from >= start - HUGE_PAGE && to <= end + HUGE_PAGE && from < end && to > start;
      size = Math.min(to, end) - Math.max(from, start);
      continue;
    }
    if (!inside) continue;
    const field = /^(AnonHugePages|Private_Hugetlb|Shared_Hugetlb):\s+(\d+) kB/.exec(line);
    if (field) huge += Math.min(Number(field[2]) * 1024, size);
  }
  return Math.min(1, huge / length);
}
