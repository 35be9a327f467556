/**
 * Transparent huge pages for the cache (256 MiB), which librandomx allocates itself and does
 * not hand out: without reserved huge pages the library takes it from malloc.
 *
 * `randomx_cache`'s first field is its memory pointer (in every 1.x release). If that word
 * points at 256 MiB of writable private memory, those pages are advised for transparent huge
 * pages before randomx_init_cache fills them; otherwise nothing is done. The word is read
 * through /proc/self/mem, where a wrong address is an error and not a crash.
 *
 * The VMs' 2 MiB scratchpads stay where the library puts them. Giving each VM a scratchpad in
 * a huge page of its own (by rewriting the VM's pointer, as xmrig does with scratchpads it
 * owns) was tried and measured: no clear gain in hashes per CPU-second (-7 % to +25 % in
 * interleaved rounds, median -2 %; BENCHMARKS.md), for a write into the library's private
 * layout. It was taken out.
 */
import fs from 'node:fs';
import { adviseHugePages } from './hugepages';
import { CACHE_BYTES, type Address } from './native';

const WORD = 8;

let memFd: number | undefined;
function mem(): number {
  memFd ??= fs.openSync('/proc/self/mem', 'r');
  return memFd;
}

function readWord(address: Address): Address {
  const word = Buffer.alloc(WORD);
  let got = 0;
  try {
    got = fs.readSync(mem(), word, 0, WORD, address);
  } catch {
    // not mapped: no pointer there
  }
  return got === WORD ? Number(word.readBigUInt64LE(0)) : 0;
}

/** Whether [start, start + bytes) lies inside one writable private anonymous mapping. */
function inWritableAnonymousMemory(start: Address, bytes: number): boolean {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p \S+ \S+ 0\s*$/.exec(line);
    if (m && parseInt(m[1], 16) <= start && start + bytes <= parseInt(m[2], 16)) return true;
  }
  return false;
}

/**
 * Advise the memory of a new, still empty cache for transparent huge pages. Returns where that
 * memory is, or 0 when the library's layout was not recognised or the advice not taken.
 */
export function adviseCacheHugePages(cache: Address): Address {
  try {
    const memory = readWord(cache);
    if (memory === 0 || !inWritableAnonymousMemory(memory, CACHE_BYTES)) return 0;
    return adviseHugePages(memory, CACHE_BYTES) > 0 ? memory : 0;
  } catch {
    return 0;
  }
}
