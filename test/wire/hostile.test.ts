import { marshalBody, WireWriter } from '../../src/bus/wire/marshal';
import {
  encodeMessage,
  encodeRaw,
  FIELD,
  frameLengths,
  METHOD_CALL,
  parseHeader,
  SIGNAL,
  RawValue,
  type RawField,
} from '../../src/bus/wire/message';
import { DecodeError } from '../../src/bus/wire/reader';
import { parseSignature } from '../../src/bus/wire/signature';
import { BodyDecoder, decodeBody } from '../../src/bus/wire/unmarshal';
import { Variant } from '../../src/bus/wire/variant';
import { Rng } from '../fuzz/generate';

/**
 * What a hostile peer can put on the wire, fed to the decoder directly (the bus daemon filters
 * some of it; the decoder must not rely on that): every failure is a DecodeError for that
 * message, never another exception, never a hang.
 */

function body(sig: string, values: unknown[], le = true): Buffer {
  const w = new WireWriter(le);
  marshalBody(w, sig, values);
  return Buffer.from(w.result());
}

/** A body written by hand, byte by byte, with the writer's alignment. */
function raw(write: (w: WireWriter) => void, le = true): Buffer {
  const w = new WireWriter(le);
  write(w);
  return Buffer.from(w.result());
}

/** The signature part of a variant. */
function variantOf(w: WireWriter, sig: string): void {
  w.u8(sig.length);
  w.utf8(sig);
  w.u8(0);
}

function decode(sig: string, bytes: Buffer, unixFds = 0, le = true): unknown[] {
  return decodeBody(bytes, le, parseSignature(sig), { unixFds });
}

/** Run `f`; it may return or throw DecodeError, and nothing else. */
function onlyDecodeErrors(f: () => unknown): 'ok' | 'refused' {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof DecodeError) return 'refused';
    throw e;
  }
}

const SAMPLES: [string, unknown[]][] = [
  ['i', [16]],
  ['s', ['grüße']],
  ['ayaay', [Buffer.from('key'), [Buffer.from('a'), Buffer.from('bc')]]],
  ['a{sv}', [{ mode: new Variant('s', 'light'), threads: new Variant('u', 2) }]],
  ['(ua(yv))v', [[1, [[1, new Variant('o', '/a')]]], new Variant('ai', [1, 2])]],
  ['a{oa{sa{sv}}}', [{ '/a': { 'x.y': { P: new Variant('t', 5n) } } }]],
  ['hh', [0, 1]],
];

describe('truncated and mutated bodies', () => {
  test.each(SAMPLES)('%s cut at every length is refused, not crashed on', (sig, values) => {
    for (const le of [true, false]) {
      const full = body(sig, values, le);
      expect(onlyDecodeErrors(() => decode(sig, full, 2, le))).toBe('ok');
      for (let len = 0; len < full.length; len++) {
        expect(onlyDecodeErrors(() => decode(sig, full.subarray(0, len), 2, le))).toBe('refused');
      }
    }
  });

  test('20,000 random byte mutations raise DecodeError or decode, nothing else', () => {
    const rng = new Rng(12345);
    let refused = 0;
    for (let i = 0; i < 20000; i++) {
      const [sig, values] = rng.pick(SAMPLES);
      const bytes = body(sig, values, i % 2 === 0);
      const flips = rng.int(1, 4);
      for (let f = 0; f < flips; f++) bytes[rng.int(0, bytes.length - 1)] = rng.int(0, 255);
      if (onlyDecodeErrors(() => decode(sig, bytes, 2, i % 2 === 0)) === 'refused') refused++;
    }
    expect(refused).toBeGreaterThan(1000);
  });
});

describe('each rule of the wire format', () => {
  const refusedCases: [string, string, Buffer, number?][] = [
    ['b', 'a boolean of 2', raw((w) => w.u32(2))],
    ['s', 'a string without its NUL', raw((w) => (w.u32(1), w.u8(0x41), w.u8(0x41)))],
    ['s', 'a NUL inside a string', raw((w) => (w.u32(2), w.u8(0x41), w.u8(0), w.u8(0)))],
    ['s', 'invalid UTF-8', raw((w) => (w.u32(2), w.u8(0xc3), w.u8(0x28), w.u8(0)))],
    [
      's',
      'a UTF-16 surrogate',
      raw((w) => (w.u32(3), w.bytes(Buffer.from([0xed, 0xa0, 0x80])), w.u8(0))),
    ],
    ['s', 'an overlong encoding', raw((w) => (w.u32(2), w.u8(0xc0), w.u8(0x80), w.u8(0)))],
    ['s', 'a length past the end', raw((w) => (w.u32(0xffffffff), w.u8(0)))],
    ['o', 'a bad object path', raw((w) => (w.u32(3), w.utf8('a/b'), w.u8(0)))],
    ['o', 'an empty path element', raw((w) => (w.u32(2), w.utf8('//'), w.u8(0)))],
    ['g', 'a bad signature', raw((w) => (w.u8(2), w.utf8('a{'), w.u8(0)))],
    ['g', 'a dict entry outside an array', raw((w) => (w.u8(4), w.utf8('{ss}'), w.u8(0)))],
    ['yi', 'non-zero padding', raw((w) => (w.u8(1), w.u8(9), w.u8(0), w.u8(0), w.u32(5)))],
    ['ai', 'an array over 64 MiB', raw((w) => w.u32(2 ** 26 + 4))],
    ['ai', 'elements that overrun the array', raw((w) => (w.u32(2), w.u32(1)))],
    ['ai', 'a length that is not a multiple', raw((w) => (w.u32(6), w.u32(1), w.u32(2)))],
    ['at', 'padding before 8-aligned elements that is not zero', raw((w) => (w.u32(0), w.u32(1)))],
    ['i', 'trailing bytes after the last value', raw((w) => (w.u32(1), w.u32(2)))],
    [
      'v',
      'a variant of two types',
      raw((w) => (w.u8(2), w.utf8('ii'), w.u8(0), w.u32(1), w.u32(2))),
    ],
    ['v', 'a variant of no type', raw((w) => (w.u8(0), w.u8(0)))],
    ['v', 'a variant with a bad signature', raw((w) => (w.u8(1), w.utf8('('), w.u8(0)))],
    ['h', 'an fd index with no fds', raw((w) => w.u32(0)), 0],
    ['h', 'an fd index beyond UNIX_FDS', raw((w) => w.u32(3)), 3],
    ['a{sv}', 'non-zero padding before a dict entry', raw((w) => (w.u32(8), w.u32(5)))],
  ];
  // A default, not a fourth column everywhere: jest reads a longer arity as a done callback.
  test.each(refusedCases)('%s: %s', (sig, _why, bytes, fds = 0) => {
    expect(() => decode(sig, bytes, fds)).toThrow(DecodeError);
  });

  test('an fd index below UNIX_FDS is read as a plain index', () => {
    expect(
      decode(
        'h',
        raw((w) => w.u32(2)),
        3,
      ),
    ).toEqual([2]);
  });

  test('variants may nest 64 containers deep, not 65', () => {
    const nest = (n: number): Buffer =>
      raw((w) => {
        for (let i = 0; i < n - 1; i++) variantOf(w, 'v');
        variantOf(w, 'y');
        w.u8(7);
      });
    let v = decode('v', nest(64))[0];
    for (let i = 0; i < 63; i++) v = (v as Variant).value;
    expect(v).toEqual(new Variant('y', 7));
    expect(() => decode('v', nest(65))).toThrow(DecodeError);
    // 10,000 levels: refused at 65 without recursing (or exhausting the stack).
    expect(() => decode('v', nest(10000))).toThrow(/64 containers/);
  });

  test('arrays in a variant count toward the 64 even when empty', () => {
    const sig = 'a'.repeat(32) + 'y';
    const bytes = raw((w) => {
      for (let i = 0; i < 32; i++) variantOf(w, 'v');
      variantOf(w, sig);
      w.u32(0);
    });
    expect(() => decode('v', bytes)).toThrow(DecodeError);
  });

  test('a big body decodes in slices when given a deadline', () => {
    const inputs = Array.from({ length: 65536 }, (_, i) => Buffer.alloc(60, i & 0xff));
    const bytes = body('ayaay', [Buffer.from('k'), inputs]);
    const d = new BodyDecoder(bytes, true, parseSignature('ayaay'));
    let slices = 1;
    while (!d.run(0)) slices++; // a deadline in the past: one batch of values per run
    expect(slices).toBeGreaterThan(10);
    const [key, list] = d.result() as [Buffer, Buffer[]];
    expect(key.toString()).toBe('k');
    expect(list.length).toBe(65536);
    expect(list[65535]).toEqual(Buffer.alloc(60, 0xff));
  });
});

describe('headers', () => {
  const fields = (extra: RawField[] = []): RawField[] => [
    [FIELD.PATH, 'o', '/a'],
    [FIELD.MEMBER, 's', 'M'],
    ...extra,
  ];
  const message = (over: Partial<Parameters<typeof encodeRaw>[0]> = {}): Buffer =>
    encodeRaw({ type: METHOD_CALL, serial: 1, fields: fields(), body: Buffer.alloc(0), ...over });

  /** A signature value written as bytes, unchecked. */
  function rawSignature(sig: string): RawValue {
    return new RawValue(
      Buffer.concat([Buffer.from([sig.length]), Buffer.from(sig), Buffer.from([0])]),
    );
  }

  test('a well-formed call parses', () => {
    const h = parseHeader(
      message({ fields: fields([[FIELD.SIGNATURE, 'g', 'i']]), body: body('i', [1]) }),
    );
    expect(h).toMatchObject({
      type: METHOD_CALL,
      path: '/a',
      member: 'M',
      signature: 'i',
      bodyLength: 4,
    });
  });

  test('unknown header fields are skipped, whatever their type', () => {
    const h = parseHeader(
      message({
        fields: fields([
          [200, 'a{sv}', { x: new Variant('s', 'y') }],
          [201, 'v', new Variant('i', 1)],
        ]),
      }),
    );
    expect(h.member).toBe('M');
  });

  const refused: [string, Buffer][] = [
    ['a bad byte-order mark', Buffer.concat([Buffer.from('X'), message().subarray(1)])],
    [
      'protocol version 2',
      (() => {
        const b = Buffer.from(message());
        b[3] = 2;
        return b;
      })(),
    ],
    ['serial 0', message({ serial: 0 })],
    ['message type 0', message({ type: 0 })],
    ['a call without a member', message({ fields: [[FIELD.PATH, 'o', '/a']] })],
    ['a signal without an interface', message({ type: SIGNAL })],
    ['a field of the wrong type', message({ fields: fields([[FIELD.REPLY_SERIAL, 's', 'x']]) })],
    ['a field twice', message({ fields: fields([[FIELD.MEMBER, 's', 'N']]) })],
    ['field code 0', message({ fields: fields([[0, 'y', 1]]) })],
    [
      'an invalid member name',
      message({
        fields: [
          [FIELD.PATH, 'o', '/a'],
          [FIELD.MEMBER, 's', '9x'],
        ],
      }),
    ],
    ['an invalid interface name', message({ fields: fields([[FIELD.INTERFACE, 's', 'nodots']]) })],
    ['an invalid sender', message({ fields: fields([[FIELD.SENDER, 's', ':']]) })],
    ['a body without a signature', message({ body: Buffer.alloc(4) })],
    [
      'an invalid body signature',
      message({ fields: fields([[FIELD.SIGNATURE, 'g', rawSignature('a'.repeat(33) + 'i')]]) }),
    ],
    [
      'a dict entry as the body',
      message({ fields: fields([[FIELD.SIGNATURE, 'g', rawSignature('{ss}')]]) }),
    ],
  ];
  test.each(refused)('%s is refused', (_why, bytes) => {
    expect(() => parseHeader(bytes)).toThrow(DecodeError);
  });

  test('a header parsed before does not vouch for one whose fields length differs', () => {
    const good = message({ fields: fields([[FIELD.SIGNATURE, 'g', 'i']]), body: body('i', [1]) });
    expect(parseHeader(good).member).toBe('M'); // now remembered by its bytes
    const longer = Buffer.from(good);
    longer.writeUInt32LE(longer.readUInt32LE(12) + 1, 12); // one padding byte counted as a field
    expect(() => parseHeader(longer)).toThrow(DecodeError);
    expect(parseHeader(good).member).toBe('M');
  });

  test('lengths over the specification limits are refused from the first 16 bytes', () => {
    const b = Buffer.from(message());
    b.writeUInt32LE(2 ** 27, 4); // body length alone reaches 128 MiB
    expect(() => frameLengths(b)).toThrow(/128 MiB/);
    const c = Buffer.from(message());
    c.writeUInt32LE(2 ** 26 + 8, 12); // header fields over 64 MiB
    expect(() => frameLengths(c)).toThrow(DecodeError);
  });

  test('random header mutations raise DecodeError or parse, nothing else', () => {
    const rng = new Rng(777);
    const good = encodeMessage(
      {
        type: METHOD_CALL,
        path: '/org/vigil/Vigil1/RandomData',
        interface: 'org.vigil.Vigil1.RandomData',
        member: 'quick',
        destination: 'org.vigil.Vigil1',
        signature: 'i',
        body: [16],
      },
      5,
    );
    for (let i = 0; i < 20000; i++) {
      const b = Buffer.from(good);
      for (let f = rng.int(1, 3); f > 0; f--) b[rng.int(0, 120)] = rng.int(0, 255);
      const outcome = onlyDecodeErrors(() => {
        const h = parseHeader(b);
        decodeBody(b, h.littleEndian, parseSignature(h.signature), {
          base: h.headerLength,
          end: Math.min(b.length, h.headerLength + h.bodyLength),
        });
      });
      expect(['ok', 'refused']).toContain(outcome);
    }
  });
});
