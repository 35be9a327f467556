/**
 * The few libc calls the RandomX side makes itself, loaded once per thread (each worker
 * thread has its own koffi instance): madvise for transparent huge pages, posix_memalign for
 * memory aligned the way direct I/O wants it.
 */
import koffi from 'koffi';
import type { Address } from './native';

interface Libc {
  madvise(addr: Address, length: number, advice: number): number;
  posixMemalign(out: [Address], alignment: number, size: number): number;
}

let loaded: Libc | undefined;

export function libc(): Libc {
  if (loaded) return loaded;
  const lib = koffi.load('libc.so.6');
  const fn = <T>(decl: string): T => lib.func(decl) as unknown as T;
  loaded = {
    madvise: fn('int madvise(uintptr_t addr, size_t length, int advice)'),
    posixMemalign: fn('int posix_memalign(_Out_ uintptr_t *out, size_t alignment, size_t size)'),
  };
  return loaded;
}

/**
 * `bytes` of native memory aligned to `alignment`, as a view. Never freed: callers keep one
 * per thread for the thread's life.
 */
export function alignedMemory(alignment: number, bytes: number): Uint8Array {
  const out: [Address] = [0];
  const err = libc().posixMemalign(out, alignment, bytes);
  if (err !== 0 || out[0] === 0) throw new Error(`posix_memalign(${bytes}) failed: ${err}`);
  return new Uint8Array(koffi.view(BigInt(out[0]), bytes));
}
