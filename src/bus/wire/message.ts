import { marshalBody, MarshalError, WireWriter } from './marshal';
import { isBusName, isErrorName, isInterfaceName, isMemberName, isObjectPath } from './names';
import { FNV_OFFSET, fnvStep } from './intern';
import { DecodeError, WireReader } from './reader';
import { alignUp, parseSingleType } from './signature';
import { BodyDecoder } from './unmarshal';

/** Message types (the second byte of every message). */
export const METHOD_CALL = 1;
export const METHOD_RETURN = 2;
export const ERROR = 3;
export const SIGNAL = 4;

/** Header flags. */
export const NO_REPLY_EXPECTED = 0x1;
export const NO_AUTO_START = 0x2;

/** Header field codes and the one type each must have. */
export const FIELD = {
  PATH: 1,
  INTERFACE: 2,
  MEMBER: 3,
  ERROR_NAME: 4,
  REPLY_SERIAL: 5,
  DESTINATION: 6,
  SENDER: 7,
  SIGNATURE: 8,
  UNIX_FDS: 9,
} as const;
const FIELD_TYPES = ['', 'o', 's', 's', 's', 'u', 's', 's', 'g', 'u'];

/** The most a message may be in all (the specification's limit), and its header fields. */
export const MAX_MESSAGE_BYTES = 2 ** 27;
const MAX_FIELDS_BYTES = 2 ** 26;
/** The fixed part: endianness, type, flags, version, body length, serial, fields length. */
export const FIXED_HEADER_BYTES = 16;

/** Everything about a message but its body: enough to decide whether to read the body at all. */
export interface MessageHeader {
  readonly littleEndian: boolean;
  readonly type: number;
  readonly flags: number;
  readonly serial: number;
  readonly bodyLength: number;
  /** Bytes from the start of the message to the start of the body (8-aligned). */
  readonly headerLength: number;
  readonly path?: string;
  readonly interface?: string;
  readonly member?: string;
  readonly errorName?: string;
  readonly replySerial?: number;
  readonly destination?: string;
  readonly sender?: string;
  /** The body's signature; '' when the header has none. */
  readonly signature: string;
  /** File descriptors the message says it carries (vigil never negotiates fd passing). */
  readonly unixFds: number;
}

export interface Message extends MessageHeader {
  readonly body: unknown[];
}

/** What a sender fills in; serial and byte order are the connection's. */
export interface OutgoingMessage {
  type: number;
  flags?: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  signature?: string;
  body?: readonly unknown[];
}

/**
 * From the first 16 bytes of a message: the length of its header (fields and padding
 * included) and of its body. Throws DecodeError for a stream that cannot be a message.
 */
export function frameLengths(fixed: Buffer): { headerLength: number; bodyLength: number } {
  const endian = fixed[0];
  if (endian !== 0x6c && endian !== 0x42) {
    throw new DecodeError(`byte order mark 0x${endian.toString(16)} is neither 'l' nor 'B'`);
  }
  if (fixed[3] !== 1) throw new DecodeError(`protocol version ${fixed[3]} is not 1`);
  const le = endian === 0x6c;
  const bodyLength = le ? fixed.readUInt32LE(4) : fixed.readUInt32BE(4);
  const fieldsLength = le ? fixed.readUInt32LE(12) : fixed.readUInt32BE(12);
  if (fieldsLength > MAX_FIELDS_BYTES) throw new DecodeError('header fields too long');
  const headerLength = alignUp(FIXED_HEADER_BYTES + fieldsLength, 8);
  if (headerLength + bodyLength > MAX_MESSAGE_BYTES) {
    throw new DecodeError(`message of ${headerLength + bodyLength} bytes exceeds 128 MiB`);
  }
  return { headerLength, bodyLength };
}

/** The header fields of a message: what the fields array of its header says. */
type HeaderFields = Pick<
  MessageHeader,
  | 'path'
  | 'interface'
  | 'member'
  | 'errorName'
  | 'replySerial'
  | 'destination'
  | 'sender'
  | 'signature'
  | 'unixFds'
>;

/**
 * Parse and validate a complete header (`buf` holds at least `headerLength` bytes). Unknown
 * field codes are skipped, as the specification asks; known ones must have their type, appear
 * once and hold valid names; each message type must have its required fields.
 */
export function parseHeader(buf: Buffer): MessageHeader {
  const { headerLength, bodyLength } = frameLengths(buf);
  if (buf.length < headerLength) throw new DecodeError('message ends inside its header');
  const le = buf[0] === 0x6c;
  const type = buf[1];
  if (type === 0) throw new DecodeError('message type 0');
  const serial = le ? buf.readUInt32LE(8) : buf.readUInt32BE(8);
  if (serial === 0) throw new DecodeError('serial 0');
  const fieldsEnd = FIXED_HEADER_BYTES + (le ? buf.readUInt32LE(12) : buf.readUInt32BE(12));
  const f = fieldsCache.lookup(buf, headerLength) ?? parseFields(buf, le, fieldsEnd, headerLength);
  // Every field present from the start: one object shape for every header.
  const h: MessageHeader = {
    littleEndian: le,
    type,
    flags: buf[2],
    serial,
    bodyLength,
    headerLength,
    path: f.path,
    interface: f.interface,
    member: f.member,
    errorName: f.errorName,
    replySerial: f.replySerial,
    destination: f.destination,
    sender: f.sender,
    signature: f.signature,
    unixFds: f.unixFds,
  };
  requireFields(h);
  if (h.signature === '' && bodyLength !== 0) {
    throw new DecodeError('a body without a signature');
  }
  return h;
}

function parseFields(
  buf: Buffer,
  le: boolean,
  fieldsEnd: number,
  headerLength: number,
): HeaderFields {
  const r = new WireReader(buf, le, 0, headerLength);
  r.pos = FIXED_HEADER_BYTES;
  let seen = 0;
  const f: { -readonly [K in keyof HeaderFields]: HeaderFields[K] } = {
    path: undefined,
    interface: undefined,
    member: undefined,
    errorName: undefined,
    replySerial: undefined,
    destination: undefined,
    sender: undefined,
    signature: '',
    unixFds: 0,
  };
  while (r.pos < fieldsEnd) {
    r.align(8);
    const code = r.u8();
    const sig = r.signature();
    const expected = FIELD_TYPES[code];
    if (expected === undefined) {
      // A field this version does not know: read its value (it must still be valid) and drop it.
      const skipped = new BodyDecoder(buf, le, [parseSingleType(sig)], {
        start: r.pos,
        end: fieldsEnd,
        trailing: true,
      });
      skipped.run();
      r.pos = skipped.position;
      continue;
    }
    if (code === 0) throw new DecodeError('header field code 0');
    if (sig !== expected) throw new DecodeError(`header field ${code} has type ${sig}`);
    if (seen & (1 << code)) throw new DecodeError(`header field ${code} appears twice`);
    seen |= 1 << code;
    const value = r.basic(expected as 'o' | 's' | 'u' | 'g');
    switch (code) {
      case FIELD.PATH:
        f.path = value as string;
        break;
      case FIELD.INTERFACE:
        if (!isInterfaceName(value as string)) throw new DecodeError('invalid interface name');
        f.interface = value as string;
        break;
      case FIELD.MEMBER:
        if (!isMemberName(value as string)) throw new DecodeError('invalid member name');
        f.member = value as string;
        break;
      case FIELD.ERROR_NAME:
        if (!isErrorName(value as string)) throw new DecodeError('invalid error name');
        f.errorName = value as string;
        break;
      case FIELD.REPLY_SERIAL:
        if (value === 0) throw new DecodeError('reply serial 0');
        f.replySerial = value as number;
        break;
      case FIELD.DESTINATION:
        if (!isBusName(value as string)) throw new DecodeError('invalid destination');
        f.destination = value as string;
        break;
      case FIELD.SENDER:
        if (!isBusName(value as string)) throw new DecodeError('invalid sender');
        f.sender = value as string;
        break;
      case FIELD.SIGNATURE:
        f.signature = value as string;
        break;
      case FIELD.UNIX_FDS:
        f.unixFds = value as number;
        break;
    }
  }
  if (r.pos !== fieldsEnd) throw new DecodeError('header fields overrun their length');
  r.align(8);
  fieldsCache.store(buf, headerLength, f);
  return f;
}

/**
 * The fields of headers seen lately, by their bytes: a client's calls (and a bus's replies)
 * repeat their fields byte for byte, serial and body length aside, which live in the fixed
 * part. A hit is checked byte for byte; the table is cleared when full.
 */
class FieldsCache {
  private readonly entries = new Map<number, { bytes: Buffer; fields: HeaderFields }>();

  constructor(private readonly limit: number) {}

  /** The bytes that decide the fields: the byte order mark, then the fields' length onwards. */
  private key(buf: Buffer, headerLength: number): number {
    let h = fnvStep(FNV_OFFSET, buf[0]);
    for (let i = FIELDS_KEY_START; i < headerLength; i++) h = fnvStep(h, buf[i]);
    return h;
  }

  lookup(buf: Buffer, headerLength: number): HeaderFields | undefined {
    const hit = this.entries.get(this.key(buf, headerLength));
    if (!hit || hit.bytes.length !== headerLength - FIELDS_KEY_START + 1) return undefined;
    if (hit.bytes[0] !== buf[0]) return undefined;
    for (let i = FIELDS_KEY_START; i < headerLength; i++) {
      if (hit.bytes[i - FIELDS_KEY_START + 1] !== buf[i]) return undefined;
    }
    return hit.fields;
  }

  store(buf: Buffer, headerLength: number, fields: HeaderFields): void {
    if (this.entries.size >= this.limit) this.entries.clear();
    const bytes = Buffer.allocUnsafe(headerLength - FIELDS_KEY_START + 1);
    bytes[0] = buf[0];
    buf.copy(bytes, 1, FIELDS_KEY_START, headerLength);
    this.entries.set(this.key(buf, headerLength), { bytes, fields: Object.freeze(fields) });
  }
}

/** Where the fields' length starts in the fixed part; everything after it is the fields. */
const FIELDS_KEY_START = 12;
const fieldsCache = new FieldsCache(512);

function requireFields(h: MessageHeader): void {
  const missing = (what: string): never => {
    throw new DecodeError(`message of type ${h.type} without ${what}`);
  };
  switch (h.type) {
    case METHOD_CALL:
      if (h.path === undefined) missing('a path');
      if (h.member === undefined) missing('a member');
      break;
    case SIGNAL:
      if (h.path === undefined) missing('a path');
      if (h.interface === undefined) missing('an interface');
      if (h.member === undefined) missing('a member');
      break;
    case ERROR:
      if (h.errorName === undefined) missing('an error name');
      if (h.replySerial === undefined) missing('a reply serial');
      break;
    case METHOD_RETURN:
      if (h.replySerial === undefined) missing('a reply serial');
      break;
    // Other types are for future versions; the connection ignores them.
  }
}

/** Check an outgoing message the way a receiver will, so an invalid one never leaves. */
function checkOutgoing(m: OutgoingMessage): void {
  const bad = (what: string): never => {
    throw new MarshalError(`cannot send a message with ${what}`);
  };
  if (m.path !== undefined && !isObjectPath(m.path)) bad(`path "${m.path.slice(0, 80)}"`);
  if (m.interface !== undefined && !isInterfaceName(m.interface)) {
    bad(`interface "${m.interface.slice(0, 80)}"`);
  }
  if (m.member !== undefined && !isMemberName(m.member)) bad(`member "${m.member.slice(0, 80)}"`);
  if (m.errorName !== undefined && !isErrorName(m.errorName)) {
    bad(`error name "${m.errorName.slice(0, 80)}"`);
  }
  if (m.destination !== undefined && !isBusName(m.destination)) {
    bad(`destination "${m.destination.slice(0, 80)}"`);
  }
  requireFieldsOutgoing(m, bad);
}

function requireFieldsOutgoing(m: OutgoingMessage, bad: (what: string) => never): void {
  if ((m.type === METHOD_CALL || m.type === SIGNAL) && (!m.path || !m.member)) {
    bad('no path or member');
  }
  if (m.type === SIGNAL && !m.interface) bad('no interface');
  if ((m.type === METHOD_RETURN || m.type === ERROR) && !m.replySerial) bad('no reply serial');
  if (m.type === ERROR && !m.errorName) bad('no error name');
}

/** A header field as a sender writes it: code, the variant's signature, the value. */
export type RawField = readonly [code: number, signature: string, value: unknown];

/** Bytes written as a header field's value unchecked (a hostile test's invalid values). */
export class RawValue {
  constructor(
    readonly bytes: Uint8Array,
    readonly align = 1,
  ) {}
}

interface FrameParts {
  type: number;
  flags?: number;
  serial: number;
  fields: readonly RawField[];
}

/** Write the header, then the body through `writeBody`, into one buffer (no copy of the body). */
function writeFrame(
  w: WireWriter,
  parts: FrameParts,
  writeBody: (w: WireWriter) => void,
  claimedBodyLength?: number,
): Buffer {
  w.u8(w.littleEndian ? 0x6c : 0x42);
  w.u8(parts.type);
  w.u8(parts.flags ?? 0);
  w.u8(1);
  w.u32(0); // body length, patched below
  w.u32(parts.serial);
  w.u32(0); // fields length, patched below
  for (const [code, sig, value] of parts.fields) {
    w.align(8);
    w.u8(code);
    marshalBody(w, 'g', [sig]);
    if (value instanceof RawValue) {
      w.align(value.align);
      w.bytes(value.bytes);
    } else {
      marshalBody(w, sig, [value]);
    }
  }
  w.patchU32(12, w.pos - FIXED_HEADER_BYTES);
  w.align(8);
  const bodyStart = w.pos;
  writeBody(w);
  w.patchU32(4, claimedBodyLength ?? w.pos - bodyStart);
  return w.result();
}

/**
 * Write a message from its parts with no checks: the fuzz test's raw client uses this to send
 * what a binding would refuse to (wrong field types, fd counts that lie, bodies that do not
 * match their signature or length). `encodeMessage` is the checked way.
 */
export function encodeRaw(
  parts: FrameParts & { littleEndian?: boolean; body: Uint8Array; bodyLength?: number },
): Buffer {
  const w = new WireWriter(parts.littleEndian ?? true, 128 + parts.body.length);
  return writeFrame(w, parts, (w) => w.bytes(parts.body), parts.bodyLength);
}

/** Encode a checked message; throws MarshalError for anything a receiver would refuse. */
export function encodeMessage(m: OutgoingMessage, serial: number, littleEndian = true): Buffer {
  checkOutgoing(m);
  const fields: RawField[] = [];
  if (m.path !== undefined) fields.push([FIELD.PATH, 'o', m.path]);
  if (m.interface !== undefined) fields.push([FIELD.INTERFACE, 's', m.interface]);
  if (m.member !== undefined) fields.push([FIELD.MEMBER, 's', m.member]);
  if (m.errorName !== undefined) fields.push([FIELD.ERROR_NAME, 's', m.errorName]);
  if (m.replySerial !== undefined) fields.push([FIELD.REPLY_SERIAL, 'u', m.replySerial]);
  if (m.destination !== undefined) fields.push([FIELD.DESTINATION, 's', m.destination]);
  const signature = m.signature ?? '';
  if (signature !== '') fields.push([FIELD.SIGNATURE, 'g', signature]);
  const w = new WireWriter(littleEndian);
  return writeFrame(w, { type: m.type, flags: m.flags, serial, fields }, (w) =>
    marshalBody(w, signature, m.body ?? []),
  );
}
