import { isUtf8 } from 'node:buffer';
import { FNV_OFFSET, fnvStep, internAscii } from './intern';
import { isObjectPath } from './names';
import { alignUp, isValidSignature, type BasicCode } from './signature';

/** A message (or part of one) that does not follow the wire format; the message is refused. */
export class DecodeError extends Error {}

/** The most an array may hold, in bytes (the specification's limit). */
export const MAX_ARRAY_BYTES = 2 ** 26;

/** Strings shorter than this are checked byte by byte; longer ones through the native check. */
const SHORT_STRING = 48;

/**
 * Reads basic values from a buffer in either byte order, checking everything the
 * specification requires of them: bounds, zero padding, booleans 0 or 1, strings that are
 * UTF-8 without NUL and NUL-terminated, object-path and signature syntax, fd indices below the
 * message's UNIX_FDS count. Offsets are relative to `base`, the start of the message (or body:
 * a body starts 8-aligned, so alignment comes out the same).
 */
export class WireReader {
  pos: number;
  readonly end: number;

  constructor(
    readonly buf: Buffer,
    readonly littleEndian: boolean,
    readonly base = 0,
    end = buf.length,
    /** How many fds the message says it carries: `h` values must index below this. */
    readonly unixFds = 0,
  ) {
    this.pos = base;
    this.end = Math.min(end, buf.length);
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Skip padding up to a multiple of `n` (from `base`); padding must be zero bytes. */
  align(n: number): void {
    const rel = this.pos - this.base;
    const target = this.base + alignUp(rel, n);
    if (target > this.end) throw new DecodeError('message ends inside padding');
    for (let i = this.pos; i < target; i++) {
      if (this.buf[i] !== 0) throw new DecodeError('non-zero padding byte');
    }
    this.pos = target;
  }

  need(n: number): void {
    if (this.pos + n > this.end) throw new DecodeError('message ends inside a value');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  u32(): number {
    this.align(4);
    this.need(4);
    const v = this.littleEndian ? this.buf.readUInt32LE(this.pos) : this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Any basic type, as the JavaScript value vigil uses for it. */
  basic(code: BasicCode): string | number | bigint | boolean {
    const b = this.buf;
    const le = this.littleEndian;
    switch (code) {
      case 'y':
        return this.u8();
      case 'b': {
        const v = this.u32();
        if (v > 1) throw new DecodeError(`boolean value ${v} is neither 0 nor 1`);
        return v === 1;
      }
      case 'n':
      case 'q': {
        this.align(2);
        this.need(2);
        const p = this.pos;
        this.pos += 2;
        if (code === 'n') return le ? b.readInt16LE(p) : b.readInt16BE(p);
        return le ? b.readUInt16LE(p) : b.readUInt16BE(p);
      }
      case 'i': {
        this.align(4);
        this.need(4);
        const p = this.pos;
        this.pos += 4;
        return le ? b.readInt32LE(p) : b.readInt32BE(p);
      }
      case 'u':
        return this.u32();
      case 'h': {
        const index = this.u32();
        if (index >= this.unixFds) {
          throw new DecodeError(
            `fd index ${index} but the message carries ${this.unixFds} file descriptors`,
          );
        }
        return index;
      }
      case 'x':
      case 't':
      case 'd': {
        this.align(8);
        this.need(8);
        const p = this.pos;
        this.pos += 8;
        if (code === 'd') return le ? b.readDoubleLE(p) : b.readDoubleBE(p);
        if (code === 'x') return le ? b.readBigInt64LE(p) : b.readBigInt64BE(p);
        return le ? b.readBigUInt64LE(p) : b.readBigUInt64BE(p);
      }
      case 's':
        return this.string(this.u32());
      case 'o': {
        const path = this.string(this.u32());
        if (!isObjectPath(path)) throw new DecodeError('invalid object path');
        return path;
      }
      case 'g':
        return this.signature();
    }
  }

  /** A signature value: one length byte, ASCII, NUL; it must parse. */
  signature(): string {
    const sig = this.string(this.u8());
    if (!isValidSignature(sig)) throw new DecodeError(`invalid signature "${sig.slice(0, 64)}"`);
    return sig;
  }

  /** `len` bytes of UTF-8 then a NUL, at the current position. */
  private string(len: number): string {
    this.need(len + 1);
    const start = this.pos;
    const end = start + len;
    const b = this.buf;
    if (b[end] !== 0) throw new DecodeError('string not NUL-terminated');
    this.pos = end + 1;
    if (len < SHORT_STRING) {
      let ascii = true;
      let hash = FNV_OFFSET;
      for (let i = start; i < end; i++) {
        const c = b[i];
        if (c === 0) throw new DecodeError('string contains a NUL byte');
        if (c >= 0x80) ascii = false;
        hash = fnvStep(hash, c);
      }
      if (ascii) return internAscii(b, start, end, hash);
    }
    const bytes = b.subarray(start, end);
    if (len >= SHORT_STRING && bytes.indexOf(0) !== -1) {
      throw new DecodeError('string contains a NUL byte');
    }
    if (!isUtf8(bytes)) throw new DecodeError('string is not valid UTF-8');
    return bytes.toString('utf8');
  }
}
