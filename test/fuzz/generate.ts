// Values for the independent client (dbus-next marshals its own Variant class only).
import { Variant } from './independent-client';

/**
 * Seeded generators of D-Bus signatures and values for the fuzz test: everything they make is
 * a valid message (the bus daemon would drop the client otherwise), but wrong for the callee
 * as often as possible: wrong types, edge numbers, long strings, deep nesting.
 */

/** mulberry32: small, fast and reproducible from a 32-bit seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** A D-Bus type as a tree. */
export type DType =
  | { kind: 'basic'; code: string }
  | { kind: 'array'; item: DType }
  | { kind: 'dict'; key: string; value: DType }
  | { kind: 'struct'; fields: DType[] }
  | { kind: 'variant' };

const BASIC = ['y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g'];
/** Every basic type code, `h` (a file-descriptor index) included: for the raw wire fuzz. */
export const ALL_BASIC = [...BASIC, 'h'];

/** How values are made: whose Variant class, and which basic type codes appear. */
export interface ValueOptions {
  readonly variant: (signature: string, value: unknown) => unknown;
  readonly codes: readonly string[];
}

/** The 3,000-call fuzz's: dbus-next's Variant, no `h` (dbus-next cannot send fds). */
const DBUS_NEXT: ValueOptions = { variant: (s, v) => new Variant(s, v), codes: BASIC };
/** Dict keys whose JavaScript object keys dbus-next marshals reliably. */
const DICT_KEYS = ['s', 's', 's', 'o', 'i'];

export function typeSignature(t: DType): string {
  switch (t.kind) {
    case 'basic':
      return t.code;
    case 'array':
      return 'a' + typeSignature(t.item);
    case 'dict':
      return `a{${t.key}${typeSignature(t.value)}}`;
    case 'struct':
      return `(${t.fields.map(typeSignature).join('')})`;
    case 'variant':
      return 'v';
  }
}

export function randomType(rng: Rng, depth = 0, codes: readonly string[] = BASIC): DType {
  const roll = rng.next();
  if (depth >= 3 || roll < 0.55) return { kind: 'basic', code: rng.pick(codes) };
  if (roll < 0.7) return { kind: 'array', item: randomType(rng, depth + 1, codes) };
  if (roll < 0.8)
    return { kind: 'dict', key: rng.pick(DICT_KEYS), value: randomType(rng, depth + 1, codes) };
  if (roll < 0.9) {
    const n = rng.int(1, 4);
    return {
      kind: 'struct',
      fields: Array.from({ length: n }, () => randomType(rng, depth + 1, codes)),
    };
  }
  return { kind: 'variant' };
}

/** Parse a signature made of the types above into trees (one per complete type). */
export function parseSignature(sig: string): DType[] {
  let i = 0;
  const one = (): DType => {
    const c = sig[i++];
    if (c === 'a') {
      if (sig[i] === '{') {
        i++;
        const key = sig[i++];
        const value = one();
        i++; // '}'
        return { kind: 'dict', key, value };
      }
      return { kind: 'array', item: one() };
    }
    if (c === '(') {
      const fields: DType[] = [];
      while (sig[i] !== ')') fields.push(one());
      i++;
      return { kind: 'struct', fields };
    }
    if (c === 'v') return { kind: 'variant' };
    return { kind: 'basic', code: c };
  };
  const out: DType[] = [];
  while (i < sig.length) out.push(one());
  return out;
}

/** Names people (and the daemon) use: a random string is mostly wasted on a name check. */
export const KNOWN_STRINGS = [
  'org.vigil.Vigil1.Daemon',
  'org.vigil.Vigil1.RandomData',
  'org.vigil.Vigil1.TaskManager',
  'org.vigil.Vigil1.Task',
  'org.freedesktop.DBus.Properties',
  'Version',
  'StartTime',
  'Running',
  'Queued',
  'MaxRunning',
  'State',
  'Progress',
  'Result',
  'bits',
  'job',
  'slow-random',
];

const INT_EDGES: Record<string, readonly number[]> = {
  y: [0, 1, 127, 128, 255],
  n: [0, 1, -1, 32767, -32768],
  q: [0, 1, 65535],
  i: [0, 1, -1, 8, 16, 100, 4096, 4097, 65536, 65537, 2147483647, -2147483648],
  u: [0, 1, 10, 10000, 10001, 4294967295],
};

function randomString(rng: Rng): string {
  const roll = rng.next();
  if (roll < 0.3) return rng.pick(KNOWN_STRINGS);
  if (roll < 0.4) return '';
  if (roll < 0.5) return 'äöü€😀\u200b'.repeat(rng.int(1, 50));
  // Occasionally long: up to 200 kB in one argument.
  if (roll < 0.55) return 'x'.repeat(rng.int(1000, 200000));
  let s = '';
  const n = rng.int(1, 40);
  for (let i = 0; i < n; i++) s += String.fromCharCode(rng.int(1, 0x7e));
  return s;
}

/** A valid object path: ours, under ours, or anywhere. */
export function randomPath(rng: Rng, ours: readonly string[]): string {
  const roll = rng.next();
  if (roll < 0.5 && ours.length > 0) return rng.pick(ours);
  if (roll < 0.6) return '/';
  const base = roll < 0.85 ? rng.pick(['/org/vigil/Vigil1', '/org/vigil/Vigil1/Tasks']) : '';
  const n = rng.int(1, 4);
  let p = base;
  for (let i = 0; i < n; i++) p += '/' + randomIdentifier(rng, 12, '_');
  return p;
}

/** [A-Za-z_][A-Za-z0-9_]*, the shape of members and name elements. */
export function randomIdentifier(rng: Rng, maxLen: number, extra = '_'): string {
  const first = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz' + extra;
  const rest = first + '0123456789';
  let s = rng.pick([...first]);
  const n = rng.int(0, maxLen - 1);
  for (let i = 0; i < n; i++) s += rng.pick([...rest]);
  return s;
}

export function randomInterfaceName(rng: Rng): string {
  const n = rng.int(2, 4);
  return Array.from({ length: n }, () => randomIdentifier(rng, 10)).join('.');
}

/** One to four complete types; D-Bus caps a signature at 255 characters. */
export function randomSignature(rng: Rng, codes: readonly string[] = BASIC): string {
  for (;;) {
    const n = rng.int(1, 4);
    const sig = Array.from({ length: n }, () => typeSignature(randomType(rng, 0, codes))).join('');
    if (sig.length <= 255) return sig;
  }
}

function randomSignatureText(rng: Rng): string {
  return rng.chance(0.2) ? '' : randomSignature(rng);
}

export function randomValue(
  rng: Rng,
  t: DType,
  ours: readonly string[],
  depth = 0,
  opts: ValueOptions = DBUS_NEXT,
): unknown {
  switch (t.kind) {
    case 'basic':
      return randomBasic(rng, t.code, ours);
    case 'array': {
      if (t.item.kind === 'basic' && t.item.code === 'y') {
        const len = rng.chance(0.05) ? rng.int(10000, 300000) : rng.int(0, 64);
        return Buffer.from(Array.from({ length: len }, () => rng.int(0, 255)));
      }
      const len = depth > 2 ? rng.int(0, 1) : rng.int(0, 4);
      return Array.from({ length: len }, () => randomValue(rng, t.item, ours, depth + 1, opts));
    }
    case 'dict': {
      const out: Record<string, unknown> = {};
      const len = depth > 2 ? rng.int(0, 1) : rng.int(0, 4);
      for (let i = 0; i < len; i++) {
        const key = randomBasic(rng, t.key, ours);
        out[String(key)] = randomValue(rng, t.value, ours, depth + 1, opts);
      }
      return out;
    }
    case 'struct':
      return t.fields.map((f) => randomValue(rng, f, ours, depth + 1, opts));
    case 'variant': {
      const inner =
        depth > 3 ? ({ kind: 'basic', code: 's' } as DType) : randomType(rng, 1, opts.codes);
      return opts.variant(typeSignature(inner), randomValue(rng, inner, ours, depth + 1, opts));
    }
  }
}

function randomBasic(rng: Rng, code: string, ours: readonly string[]): unknown {
  switch (code) {
    case 'h':
      // An index into fds the message never carries (vigil negotiates no fd passing).
      return rng.pick([0, 1, 3, 255, 4294967295]);
    case 'b':
      return rng.chance(0.5);
    case 'y':
    case 'n':
    case 'q':
    case 'i':
    case 'u': {
      const edges = INT_EDGES[code];
      if (rng.chance(0.6)) return rng.pick(edges);
      const lo = Math.min(...edges);
      const hi = Math.max(...edges);
      return rng.int(lo, hi);
    }
    case 'x':
      return rng.pick([0n, 1n, -1n, 9223372036854775807n, -9223372036854775807n, 123456789n]);
    case 't':
      return rng.pick([0n, 1n, 18446744073709551615n, 1000000n, 4294967296n]);
    case 'd':
      return rng.pick([0, -0, 1, -1, 0.5, 1e308, -1e308, 5e-324, rng.next() * 1e6]);
    case 's':
      return randomString(rng);
    case 'o':
      return randomPath(rng, ours);
    case 'g':
      return randomSignatureText(rng);
  }
  throw new Error(`no generator for ${code}`);
}

/** Deep nesting the spec allows (arrays up to 32 levels, variants in variants). */
export function deepValue(rng: Rng): { signature: string; body: unknown[] } {
  if (rng.chance(0.5)) {
    const depth = rng.int(10, 30);
    let value: unknown = [rng.int(0, 9)];
    for (let i = 1; i < depth; i++) value = [value];
    return { signature: 'a'.repeat(depth) + 'i', body: [value] };
  }
  const depth = rng.int(10, 30);
  let v: Variant = new Variant('s', 'bottom');
  for (let i = 0; i < depth; i++) v = new Variant('v', v);
  return { signature: 'v', body: [v] };
}
