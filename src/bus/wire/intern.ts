/**
 * Short ASCII strings read off the wire, interned: the same few names (paths, interfaces,
 * members, bus names, dict keys) arrive in almost every message, and making a new JavaScript
 * string from bytes costs more than finding the one made last time. Entries are found by a hash
 * of the bytes and checked byte for byte, so a collision only costs a miss. The table is
 * cleared when full: a peer sending endless distinct names gains nothing but misses.
 */
const MAX_ENTRIES = 4096;
const table = new Map<number, string>();

/**
 * The string for bytes `start..end` of `buf`, which the caller has checked are ASCII without
 * NUL, given their FNV-1a `hash`.
 */
export function internAscii(buf: Uint8Array, start: number, end: number, hash: number): string {
  const len = end - start;
  const hit = table.get(hash);
  if (hit !== undefined && hit.length === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (hit.charCodeAt(i) !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return hit;
  }
  const s = String.fromCharCode.apply(null, Array.from(buf.subarray(start, end)));
  if (table.size >= MAX_ENTRIES) table.clear();
  table.set(hash, s);
  return s;
}

/** FNV-1a, one byte at a time (callers fold it into the loop that checks the bytes). */
export const FNV_OFFSET = 0x811c9dc5;
export function fnvStep(hash: number, byte: number): number {
  return Math.imul(hash ^ byte, 0x01000193) >>> 0;
}

/** Remember the answer of a check on strings (name syntax), for the same few strings. */
export function memoize(check: (s: string) => boolean): (s: string) => boolean {
  const known = new Map<string, boolean>();
  return (s: string) => {
    let ok = known.get(s);
    if (ok === undefined) {
      ok = check(s);
      if (known.size >= MAX_ENTRIES) known.clear();
      known.set(s, ok);
    }
    return ok;
  };
}
