import { performance } from 'node:perf_hooks';
import { DecodeError, MAX_ARRAY_BYTES, WireReader } from './reader';
import { MAX_TOTAL_DEPTH, parseSingleType, SignatureError, type TypeNode } from './signature';
import { Variant } from './variant';

/**
 * Decodes a message body into the values vigil works with: numbers (`y n q i u d`, and `h` as
 * the plain fd index), bigints (`x t`), booleans, strings (`s o g`), Buffers (`ay`, sharing the
 * message's memory), arrays (other arrays and structures), plain objects (dicts, keyed by the
 * key's string form) and Variants.
 *
 * It works from an explicit stack rather than by recursion, so that decoding can stop at any
 * value and carry on later: `run(deadline)` returns false when the deadline passed first, and a
 * big body is decoded in slices between which other callers are served. Everything read is
 * validated (see WireReader), nesting is kept within the specification's 64 containers across
 * variants, and the body must be used up exactly.
 */
export class BodyDecoder {
  private readonly reader: WireReader;
  private readonly stack: Frame[] = [];
  private values: unknown[] | undefined;

  constructor(
    buf: Buffer,
    littleEndian: boolean,
    types: readonly TypeNode[],
    private readonly options: DecodeOptions = {},
  ) {
    this.reader = new WireReader(buf, littleEndian, options.base, options.end, options.unixFds);
    if (options.start !== undefined) this.reader.pos = options.start;
    this.stack.push(new SequenceFrame(types, 0));
  }

  /** Where reading stopped (with `trailing`, the first byte after the values). */
  get position(): number {
    return this.reader.pos;
  }

  /** Decode until done (true) or until `performance.now()` passes `deadline` (false). */
  run(deadline = Infinity): boolean {
    const r = this.reader;
    const stack = this.stack;
    let steps = 0;
    while (stack.length > 0) {
      if ((++steps & 1023) === 0 && performance.now() > deadline) return false;
      const frame = stack[stack.length - 1];
      const t = frame.next(r);
      if (t === undefined) {
        stack.pop();
        const value = frame.finish();
        if (stack.length > 0) stack[stack.length - 1].accept(value);
        else this.values = value as unknown[];
        continue;
      }
      switch (t.code) {
        case 'a': {
          const len = r.u32();
          if (len > MAX_ARRAY_BYTES) throw new DecodeError(`array of ${len} bytes is too long`);
          r.align(t.elem.align);
          r.need(len);
          if (t.elem.code === 'y') {
            frame.accept(r.buf.subarray(r.pos, r.pos + len));
            r.pos += len;
          } else {
            stack.push(new ArrayFrame(t.elem, r.pos + len, frame.depth + 1));
          }
          break;
        }
        case '(':
          r.align(8);
          stack.push(new SequenceFrame(t.fields, frame.depth + 1));
          break;
        case '{':
          r.align(8);
          stack.push(new SequenceFrame([t.key, t.value], frame.depth + 1));
          break;
        case 'v': {
          const sig = r.signature();
          let inner: TypeNode;
          try {
            inner = parseSingleType(sig);
          } catch (e) {
            throw new DecodeError(`variant signature: ${(e as SignatureError).message}`);
          }
          if (frame.depth + 1 + inner.depth > MAX_TOTAL_DEPTH) {
            throw new DecodeError(`values nest more than ${MAX_TOTAL_DEPTH} containers deep`);
          }
          stack.push(new VariantFrame(sig, inner, frame.depth + 1));
          break;
        }
        default:
          frame.accept(r.basic(t.code));
      }
    }
    if (r.pos !== r.end && !this.options.trailing) {
      throw new DecodeError(`${r.end - r.pos} bytes after the last value`);
    }
    return true;
  }

  /** The decoded values, one per complete type of the signature; only after run() is done. */
  result(): unknown[] {
    if (!this.values) throw new Error('body not decoded yet');
    return this.values;
  }
}

export interface DecodeOptions {
  /** Where alignment is counted from: the start of the message (default 0). */
  base?: number;
  /** Where the values start (default `base`). */
  start?: number;
  /** Where they must end (default the buffer's end). */
  end?: number;
  /** The message's UNIX_FDS count, which `h` indices must stay below. */
  unixFds?: number;
  /** Allow bytes after the last value (a header field inside the header). */
  trailing?: boolean;
}

/** Decode a whole body at once (small bodies, replies and signals of a client). */
export function decodeBody(
  buf: Buffer,
  littleEndian: boolean,
  types: readonly TypeNode[],
  options: DecodeOptions = {},
): unknown[] {
  const d = new BodyDecoder(buf, littleEndian, types, options);
  d.run();
  return d.result();
}

/** One container being read: which type comes next, and what to do with each value. */
interface Frame {
  /** Containers around the values this frame reads (for the 64-deep limit). */
  readonly depth: number;
  next(r: WireReader): TypeNode | undefined;
  accept(value: unknown): void;
  finish(): unknown;
}

/** A body, a structure's fields or a dict entry's key and value: each type once, in order. */
class SequenceFrame implements Frame {
  private index = 0;
  private readonly out: unknown[] = [];

  constructor(
    private readonly types: readonly TypeNode[],
    readonly depth: number,
  ) {}

  next(): TypeNode | undefined {
    return this.types[this.index++];
  }

  accept(value: unknown): void {
    this.out.push(value);
  }

  finish(): unknown {
    return this.out;
  }
}

class ArrayFrame implements Frame {
  private readonly list: unknown[] | undefined;
  private readonly dict: Record<string, unknown> | undefined;

  constructor(
    private readonly elem: TypeNode,
    private readonly end: number,
    readonly depth: number,
  ) {
    if (elem.code === '{') this.dict = {};
    else this.list = [];
  }

  next(r: WireReader): TypeNode | undefined {
    if (r.pos === this.end) return undefined;
    if (r.pos > this.end) throw new DecodeError('array elements overrun the array length');
    return this.elem;
  }

  accept(value: unknown): void {
    if (this.list) {
      this.list.push(value);
      return;
    }
    const [k, v] = value as [unknown, unknown];
    setKey(this.dict as Record<string, unknown>, String(k), v);
  }

  finish(): unknown {
    return this.list ?? this.dict;
  }
}

class VariantFrame implements Frame {
  private done = false;
  private value: unknown;

  constructor(
    private readonly sig: string,
    private readonly inner: TypeNode,
    readonly depth: number,
  ) {}

  next(): TypeNode | undefined {
    if (this.done) return undefined;
    this.done = true;
    return this.inner;
  }

  accept(value: unknown): void {
    this.value = value;
  }

  finish(): unknown {
    return new Variant(this.sig, this.value);
  }
}

/** Set a dict key without letting `__proto__` replace the object's prototype. */
export function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    obj[key] = value;
  }
}
