/**
 * Transparent huge pages for the memory librandomx allocates itself and does not hand out:
 * the cache (256 MiB) and each VM's scratchpad (2 MiB), for the worker threads. Without
 * reserved huge pages the library takes both from malloc, and its API takes no memory from
 * the caller (xmrig owns its scratchpads for this reason).
 *
 * The cache: `randomx_cache`'s first field is its memory pointer (in every 1.x release). If
 * that word points at 256 MiB of writable private memory, those pages are advised for
 * transparent huge pages before randomx_init_cache fills them; otherwise nothing is done.
 *
 * The scratchpad: every hash reads and writes it at random, a TLB miss on most accesses on
 * 4 KiB pages, and malloc puts it where no 2 MiB page can cover it. The VM is given one of its
 * own instead, 2 MiB-aligned and advised for huge pages. Finding the pointer relies on the
 * VM's layout, so every step is checked and any doubt leaves the VM as the library made it:
 * the pointer is the word just before the VM's dataset (or cache) pointer, points at 2 MiB of
 * writable private memory, and is the only such word; and a probe hash must come out the same
 * after the switch. The library's own scratchpad is put back before the VM is destroyed, so
 * the library frees what it allocated.
 *
 * Memory is read and written through /proc/self/mem, where a wrong address is an error and
 * not a crash.
 */
import fs from 'node:fs';
import { adviseHugePages, mapHugeAligned, unmap } from './hugepages';
import { CACHE_BYTES, HASH_SIZE, native, type Address } from './native';

const WORD = 8;
/** RANDOMX_SCRATCHPAD_L3 of the reference configuration (Monero's). */
const SCRATCHPAD_BYTES = 2 * 1024 * 1024;
/** The VM object's fields are searched within its first 4 KiB. */
const VM_SCAN_BYTES = 4096;
const PROBE = Buffer.from('vigil scratchpad probe');

let memFd: number | undefined;
function mem(): number {
  memFd ??= fs.openSync('/proc/self/mem', 'r+');
  return memFd;
}

function read(address: Address, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let got = 0;
  try {
    got = fs.readSync(mem(), out, 0, bytes, address);
  } catch {
    // the object ends where the mapping does: what was read is all there is
  }
  return out.subarray(0, got - (got % WORD));
}

function readWord(address: Address): Address {
  const word = read(address, WORD);
  return word.length === WORD ? Number(word.readBigUInt64LE(0)) : 0;
}

function writeWord(address: Address, value: Address): void {
  const word = Buffer.alloc(WORD);
  word.writeBigUInt64LE(BigInt(value));
  if (fs.writeSync(mem(), word, 0, WORD, address) !== WORD) throw new Error('short write');
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

export interface MovedScratchpad {
  /** Where the VM keeps its scratchpad pointer. */
  readonly field: Address;
  readonly original: Address;
  readonly replacement: Address;
}

/** The address of the VM's scratchpad pointer, if exactly one word looks like it. */
function findScratchpadField(vm: Address, memoryHandle: Address): Address | undefined {
  const object = read(vm, VM_SCAN_BYTES);
  const candidates: Address[] = [];
  for (let at = WORD; at + WORD <= object.length; at += WORD) {
    if (Number(object.readBigUInt64LE(at)) !== memoryHandle) continue;
    const pointer = Number(object.readBigUInt64LE(at - WORD));
    if (pointer !== 0 && inWritableAnonymousMemory(pointer, SCRATCHPAD_BYTES)) {
      candidates.push(vm + at - WORD);
    }
  }
  return candidates.length === 1 ? candidates[0] : undefined;
}

function probeHash(vm: Address): Buffer {
  const out = Buffer.alloc(HASH_SIZE);
  native().calculateHash(vm, PROBE, PROBE.length, out);
  return out;
}

/**
 * Give `vm` (bound to `memoryHandle`: its dataset, or in light mode its cache) a scratchpad
 * in a transparent huge page. Returns what to undo before the VM is destroyed, or undefined
 * when the VM is left as it was.
 */
export function moveScratchpadToHugePage(
  vm: Address,
  memoryHandle: Address,
): MovedScratchpad | undefined {
  let field: Address | undefined;
  try {
    field = findScratchpadField(vm, memoryHandle);
  } catch {
    return undefined;
  }
  if (field === undefined) return undefined;
  const replacement = mapHugeAligned(SCRATCHPAD_BYTES);
  if (replacement === 0) return undefined;
  const original = readWord(field);
  let switched = false;
  try {
    const before = probeHash(vm);
    writeWord(field, replacement);
    switched = true;
    if (probeHash(vm).equals(before)) return { field, original, replacement };
  } catch {
    // /proc/self/mem refused (a hardened kernel): the VM keeps the library's scratchpad
  }
  if (switched) writeWord(field, original);
  unmap(replacement, SCRATCHPAD_BYTES);
  return undefined;
}

/** Put the library's scratchpad back (before randomx_destroy_vm) and free the huge one. */
export function restoreScratchpad(moved: MovedScratchpad): void {
  writeWord(moved.field, moved.original);
  unmap(moved.replacement, SCRATCHPAD_BYTES);
}
