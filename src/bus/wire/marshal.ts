import { isObjectPath } from './names';
import { MAX_ARRAY_BYTES } from './reader';
import {
  alignUp,
  isValidSignature,
  MAX_TOTAL_DEPTH,
  parseSignature,
  parseSingleType,
  type TypeNode,
} from './signature';
import { Variant } from './variant';

/**
 * A value that cannot be sent with its signature (wrong type, out of range, a NUL in a string,
 * a bad object path...). Thrown before anything is written to the socket: the bus daemon drops
 * a connection that sends an invalid message, so nothing invalid may leave.
 */
export class MarshalError extends Error {}

/** Strings up to this long are tried as ASCII first. */
const SHORT_STRING = 64;

/** A growable buffer written in one byte order, aligned from its start. */
export class WireWriter {
  private buf: Buffer;
  pos = 0;

  constructor(
    readonly littleEndian = true,
    initialSize = 256,
  ) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private room(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  align(n: number): void {
    const target = alignUp(this.pos, n);
    if (target === this.pos) return;
    this.room(target - this.pos);
    const b = this.buf;
    for (let i = this.pos; i < target; i++) b[i] = 0;
    this.pos = target;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.align(2);
    this.room(2);
    if (this.littleEndian) this.buf.writeUInt16LE(v, this.pos);
    else this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }

  i16(v: number): void {
    this.align(2);
    this.room(2);
    if (this.littleEndian) this.buf.writeInt16LE(v, this.pos);
    else this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
  }

  u32(v: number): void {
    this.align(4);
    this.room(4);
    if (this.littleEndian) this.buf.writeUInt32LE(v, this.pos);
    else this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  i32(v: number): void {
    this.align(4);
    this.room(4);
    if (this.littleEndian) this.buf.writeInt32LE(v, this.pos);
    else this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
  }

  /** Overwrite a u32 written earlier (an array's length once its elements are known). */
  patchU32(at: number, v: number): void {
    if (this.littleEndian) this.buf.writeUInt32LE(v, at);
    else this.buf.writeUInt32BE(v, at);
  }

  i64(v: bigint): void {
    this.align(8);
    this.room(8);
    if (this.littleEndian) this.buf.writeBigInt64LE(v, this.pos);
    else this.buf.writeBigInt64BE(v, this.pos);
    this.pos += 8;
  }

  u64(v: bigint): void {
    this.align(8);
    this.room(8);
    if (this.littleEndian) this.buf.writeBigUInt64LE(v, this.pos);
    else this.buf.writeBigUInt64BE(v, this.pos);
    this.pos += 8;
  }

  f64(v: number): void {
    this.align(8);
    this.room(8);
    if (this.littleEndian) this.buf.writeDoubleLE(v, this.pos);
    else this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A string's bytes as UTF-8 (JavaScript strings always encode to valid UTF-8). */
  utf8(s: string): number {
    const len = s.length;
    if (len <= SHORT_STRING) {
      // Short ASCII strings (nearly every name and most values) byte by byte: cheaper than
      // Buffer.write's call into C++.
      this.room(len);
      const b = this.buf;
      const at = this.pos;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[at + i] = c;
      }
      if (i === len) {
        this.pos += len;
        return len;
      }
    }
    // Three bytes per UTF-16 unit at most; long strings are measured instead of over-reserved.
    this.room(len < 4096 ? len * 3 : Buffer.byteLength(s, 'utf8'));
    const n = this.buf.write(s, this.pos, 'utf8');
    this.pos += n;
    return n;
  }

  /** The bytes written so far (a view, not a copy). */
  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** Write `values`, one per complete type of `signature`, as a message body. */
export function marshalBody(w: WireWriter, signature: string, values: readonly unknown[]): void {
  let types: readonly TypeNode[];
  try {
    types = parseSignature(signature);
  } catch (e) {
    throw new MarshalError(`bad signature "${signature}": ${(e as Error).message}`);
  }
  if (values.length !== types.length) {
    throw new MarshalError(
      `signature "${signature}" has ${types.length} values, the body ${values.length}`,
    );
  }
  for (let i = 0; i < types.length; i++) writeValue(w, types[i], values[i], 0);
}

const INT_RANGES: Record<string, [number, number]> = {
  y: [0, 0xff],
  n: [-0x8000, 0x7fff],
  q: [0, 0xffff],
  i: [-0x80000000, 0x7fffffff],
  u: [0, 0xffffffff],
  h: [0, 0xffffffff],
};
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function fail(t: TypeNode, value: unknown, why: string): never {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value;
  throw new MarshalError(`cannot send ${shown} as "${t.sig}": ${why}`);
}

function writeValue(w: WireWriter, t: TypeNode, value: unknown, depth: number): void {
  switch (t.code) {
    case 'y':
    case 'n':
    case 'q':
    case 'i':
    case 'u':
    case 'h': {
      const [lo, hi] = INT_RANGES[t.code];
      if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) {
        fail(t, value, `not an integer in ${lo}..${hi}`);
      }
      if (t.code === 'y') w.u8(value);
      else if (t.code === 'n') w.i16(value);
      else if (t.code === 'q') w.u16(value);
      else if (t.code === 'i') w.i32(value);
      else w.u32(value);
      return;
    }
    case 'b':
      if (typeof value !== 'boolean') fail(t, value, 'not a boolean');
      w.u32(value ? 1 : 0);
      return;
    case 'x':
    case 't': {
      const v = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value;
      const [lo, hi] = t.code === 'x' ? [INT64_MIN, INT64_MAX] : [0n, UINT64_MAX];
      if (typeof v !== 'bigint' || v < lo || v > hi)
        fail(t, value, 'not a 64-bit integer in range');
      if (t.code === 'x') w.i64(v);
      else w.u64(v);
      return;
    }
    case 'd':
      if (typeof value !== 'number') fail(t, value, 'not a number');
      w.f64(value);
      return;
    case 's':
    case 'o': {
      if (typeof value !== 'string') fail(t, value, 'not a string');
      if (t.code === 'o' && !isObjectPath(value)) fail(t, value, 'not an object path');
      if (value.includes('\0')) fail(t, value, 'contains a NUL character');
      w.u32(0);
      const at = w.pos - 4;
      const n = w.utf8(value);
      w.patchU32(at, n);
      w.u8(0);
      return;
    }
    case 'g':
      if (typeof value !== 'string' || !isValidSignature(value)) fail(t, value, 'not a signature');
      w.u8(value.length);
      w.utf8(value);
      w.u8(0);
      return;
    case 'v': {
      if (!(value instanceof Variant)) fail(t, value, 'not a Variant');
      let inner: TypeNode;
      try {
        inner = parseSingleType(value.signature);
      } catch (e) {
        return fail(t, value.signature, (e as Error).message);
      }
      if (depth + 1 + inner.depth > MAX_TOTAL_DEPTH) fail(t, value, 'nested too deeply');
      w.u8(value.signature.length);
      w.utf8(value.signature);
      w.u8(0);
      writeValue(w, inner, value.value, depth + 1);
      return;
    }
    case '(': {
      if (!Array.isArray(value) || value.length !== t.fields.length) {
        fail(t, value, `not an array of ${t.fields.length} fields`);
      }
      w.align(8);
      for (let i = 0; i < t.fields.length; i++) writeValue(w, t.fields[i], value[i], depth + 1);
      return;
    }
    case '{':
      // Entries are written by their array (below): a lone dict entry is not a value.
      fail(t, value, 'a dict entry outside its array');
      return;
    case 'a':
      writeArray(w, t, t.elem, value, depth);
      return;
  }
}

function writeArray(
  w: WireWriter,
  t: TypeNode,
  elem: TypeNode,
  value: unknown,
  depth: number,
): void {
  w.u32(0);
  const lengthAt = w.pos - 4;
  w.align(elem.align);
  const start = w.pos;
  if (elem.code === 'y' && value instanceof Uint8Array) {
    w.bytes(value);
  } else if (elem.code === '{') {
    const entries =
      value instanceof Map
        ? [...(value as Map<unknown, unknown>).entries()]
        : value !== null && typeof value === 'object' && !Array.isArray(value)
          ? Object.entries(value as Record<string, unknown>).map(([k, v]) => [
              dictKey(elem.key, k),
              v,
            ])
          : fail(t, value, 'not an object or Map');
    for (const [k, v] of entries) {
      w.align(8);
      writeValue(w, elem.key, k, depth + 2);
      writeValue(w, elem.value, v, depth + 2);
    }
  } else {
    if (!Array.isArray(value)) fail(t, value, 'not an array');
    for (const v of value) writeValue(w, elem, v, depth + 1);
  }
  const length = w.pos - start;
  if (length > MAX_ARRAY_BYTES) fail(t, value, `array of ${length} bytes exceeds 64 MiB`);
  w.patchU32(lengthAt, length);
}

/** A plain object's key (always a string in JavaScript) as a value of the dict's key type. */
function dictKey(key: TypeNode, k: string): unknown {
  switch (key.code) {
    case 's':
    case 'o':
    case 'g':
      return k;
    case 'x':
    case 't':
      return /^-?\d+$/.test(k) ? BigInt(k) : k;
    case 'b':
      return k === 'true' ? true : k === 'false' ? false : k;
    default:
      return k.trim() === '' ? k : Number(k);
  }
}
