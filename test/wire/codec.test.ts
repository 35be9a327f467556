import path from 'node:path';
import { marshalBody, MarshalError, WireWriter } from '../../src/bus/wire/marshal';
import { encodeMessage, METHOD_CALL, parseHeader } from '../../src/bus/wire/message';
import { DecodeError } from '../../src/bus/wire/reader';
import { parseSignature } from '../../src/bus/wire/signature';
import { decodeBody } from '../../src/bus/wire/unmarshal';
import { Variant } from '../../src/bus/wire/variant';
import { run, runOk, SYSTEM_PYTHON } from '../interop/tools';
import { normaliseBody } from './normalise';

/**
 * Round trips of the wire codec against GLib's marshalling (Gio.DBusMessage blobs, no bus in
 * between) in both byte orders, and of the codec with itself.
 */
const GLIB_BLOBS = path.resolve(__dirname, '../../../test/wire/glib_blobs.py');

function decodeMessage(bytes: Buffer): { header: ReturnType<typeof parseHeader>; body: unknown[] } {
  const header = parseHeader(bytes);
  const body = decodeBody(bytes, header.littleEndian, parseSignature(header.signature), {
    base: header.headerLength,
    unixFds: header.unixFds,
  });
  return { header, body };
}

interface GlibCase {
  name: string;
  signature: string;
  order: 'l' | 'B';
  hex: string;
  value: unknown[];
}

describe('GLib-encoded messages decode to the same values', () => {
  let cases: GlibCase[];
  beforeAll(async () => {
    const out = await runOk(SYSTEM_PYTHON, [GLIB_BLOBS, 'encode']);
    cases = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as GlibCase);
  });

  test('every case, little- and big-endian', () => {
    expect(cases.length).toBeGreaterThan(20);
    expect(cases.some((c) => c.order === 'B')).toBe(true);
    for (const c of cases) {
      const { header, body } = decodeMessage(Buffer.from(c.hex, 'hex'));
      expect({ name: c.name, sig: header.signature }).toEqual({ name: c.name, sig: c.signature });
      expect(header.littleEndian).toBe(c.order === 'l');
      expect(header.member).toBe('Echo');
      expect(header.path).toBe('/org/vigil/Vigil1');
      expect(header.serial).toBe(7);
      expect({ name: c.name, value: normaliseBody(c.signature, body) }).toEqual({
        name: c.name,
        value: c.value,
      });
    }
  });
});

/** Values as vigil sends them, for GLib to read back. */
const OUR_CASES: [string, string, unknown[]][] = [
  [
    'basics',
    'ybnqiuxtd',
    [255, true, -32768, 65535, -2147483648, 4294967295, -(2n ** 63n), 2n ** 64n - 1n, -0.125],
  ],
  ['numbers-as-64-bit', 'xt', [-5, 5]],
  ['strings', 'sog', ['grüße 😀', '/org/vigil/Vigil1/Tasks/a1', 'a{sv}(iay)']],
  ['bytes', 'ay', [Buffer.from([0, 1, 254, 255])]],
  ['byte-list', 'ay', [[1, 2, 3]]],
  ['empty', 'ayaiasa{sv}', [Buffer.alloc(0), [], [], {}]],
  ['aligned-array', 'yat', [7, [1n, 2n]]],
  ['dict', 'a{sv}', [{ a: new Variant('i', 1), b: new Variant('s', 'x') }]],
  ['int-keys', 'a{is}', [{ '-5': 'minus', 7: 'seven' }]],
  ['map', 'a{ub}', [new Map([[3, true]])]],
  ['struct', '(ib(sd))', [[1, false, ['in', 2.25]]]],
  [
    'struct-array',
    'a(yv)',
    [
      [
        [1, new Variant('s', 'one')],
        [2, new Variant('u', 2)],
      ],
    ],
  ],
  ['nested-variant', 'v', [new Variant('v', new Variant('v', new Variant('as', ['deep'])))]],
  ['variant-dict', 'v', [new Variant('a{sa{sv}}', { o: { p: new Variant('t', 5n) } })]],
  ['aay', 'aay', [[Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cdef')]]],
  ['long-string', 's', ['x'.repeat(100000)]],
];

describe('messages vigil encodes read back the same in GLib', () => {
  for (const littleEndian of [true, false]) {
    test(littleEndian ? 'little-endian' : 'big-endian', async () => {
      const input = OUR_CASES.map(([name, signature, body], i) => {
        const bytes = encodeMessage(
          {
            type: METHOD_CALL,
            destination: 'org.vigil.Vigil1',
            path: '/org/vigil/Vigil1',
            interface: 'org.vigil.Vigil1.Test',
            member: 'Echo',
            signature,
            body,
          },
          i + 1,
          littleEndian,
        );
        return JSON.stringify({ name, hex: bytes.toString('hex') });
      });
      const out = await runOk(SYSTEM_PYTHON, [GLIB_BLOBS, 'decode'], {
        input: input.join('\n') + '\n',
      });
      const got = out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { name: string; ok: boolean; value: unknown; error?: string });
      expect(got.map((g) => [g.name, g.ok, g.error])).toEqual(
        OUR_CASES.map(([name]) => [name, true, undefined]),
      );
      for (const [i, [name, signature, body]] of OUR_CASES.entries()) {
        // Our own normal form of what we sent; numbers given for x/t go out as 64-bit.
        const sent = normaliseBody(signature, body);
        expect({ name, value: got[i].value }).toEqual({ name, value: sent });
      }
    });
  }

  test('a message GLib refuses is refused by our decoder too (one check, both ways)', async () => {
    const good = encodeMessage(
      { type: METHOD_CALL, path: '/a', member: 'M', signature: 's', body: ['ok'] },
      1,
    );
    const bad = Buffer.from(good);
    bad[bad.length - 1] = 0x41; // the string's NUL terminator
    const r = await run(SYSTEM_PYTHON, [GLIB_BLOBS, 'decode'], {
      input: JSON.stringify({ name: 'bad', hex: bad.toString('hex') }) + '\n',
    });
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false });
    expect(() => decodeMessage(bad)).toThrow(DecodeError);
    expect(decodeMessage(good).body).toEqual(['ok']);
  });
});

describe('the codec with itself', () => {
  test.each(OUR_CASES)('%s round-trips in both byte orders', (_name, signature, body) => {
    for (const le of [true, false]) {
      const bytes = encodeMessage(
        { type: METHOD_CALL, path: '/a', member: 'M', signature, body },
        9,
        le,
      );
      const { header, body: back } = decodeMessage(bytes);
      expect(header.signature).toBe(signature);
      expect(normaliseBody(signature, back)).toEqual(normaliseBody(signature, body));
    }
  });

  test('a byte array decodes as a view of the message, not a copy', () => {
    const bytes = encodeMessage(
      {
        type: METHOD_CALL,
        path: '/a',
        member: 'M',
        signature: 'ay',
        body: [Buffer.alloc(1000, 7)],
      },
      1,
    );
    const { body } = decodeMessage(bytes);
    const ay = body[0] as Buffer;
    expect(ay.buffer).toBe(bytes.buffer);
    expect(ay.length).toBe(1000);
  });

  test('a dict key named __proto__ is an ordinary key', () => {
    const bytes = encodeMessage(
      {
        type: METHOD_CALL,
        path: '/a',
        member: 'M',
        signature: 'a{ss}',
        body: [new Map([['__proto__', 'x']])],
      },
      1,
    );
    const [dict] = decodeMessage(bytes).body as [Record<string, unknown>];
    expect(Object.getPrototypeOf(dict)).toBe(Object.prototype);
    expect(Object.keys(dict)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(dict, '__proto__')?.value).toBe('x');
  });
});

describe('nothing invalid is ever encoded', () => {
  const refused: [string, string, unknown][] = [
    ['y', 'out of range', 256],
    ['y', 'not an integer', 1.5],
    ['i', 'a string', '1'],
    ['u', 'negative', -1],
    ['n', 'out of range', 40000],
    ['t', 'negative', -1n],
    ['x', 'too big', 2n ** 63n],
    ['t', 'an unsafe number', 2 ** 60],
    ['b', 'a number', 1],
    ['s', 'a NUL', 'a\0b'],
    ['o', 'not a path', 'relative/path'],
    ['o', 'a trailing slash', '/a/'],
    ['g', 'not a signature', 'a'],
    ['v', 'a plain value', 5],
    ['v', 'a bad variant signature', new Variant('ii', [1, 2])],
    ['(is)', 'too few fields', [1]],
    ['ai', 'not an array', 5],
    ['a{sv}', 'not a dict', 'x'],
    ['a{sv}', 'a value that is not a Variant', { a: 1 }],
  ];
  test.each(refused)('%s: %s', (sig, _why, value) => {
    expect(() => marshalBody(new WireWriter(), sig, [value])).toThrow(MarshalError);
  });

  test('too many or too few values for the signature', () => {
    expect(() => marshalBody(new WireWriter(), 'ii', [1])).toThrow(MarshalError);
    expect(() => marshalBody(new WireWriter(), 'i', [1, 2])).toThrow(MarshalError);
  });

  test('variants nested past 64 containers are refused', () => {
    let v: unknown = 'bottom';
    for (let i = 0; i < 64; i++) v = new Variant(i === 0 ? 's' : 'v', v);
    expect(() => marshalBody(new WireWriter(), 'v', [v])).not.toThrow();
    expect(() => marshalBody(new WireWriter(), 'v', [new Variant('v', v)])).toThrow(MarshalError);
  });

  test('header names are checked', () => {
    const base = { type: METHOD_CALL, path: '/a', member: 'M' };
    expect(() => encodeMessage({ ...base, member: '1x' }, 1)).toThrow(MarshalError);
    expect(() => encodeMessage({ ...base, interface: 'noDots' }, 1)).toThrow(MarshalError);
    expect(() => encodeMessage({ ...base, destination: 'a..b' }, 1)).toThrow(MarshalError);
    expect(() => encodeMessage({ ...base, path: '//' }, 1)).toThrow(MarshalError);
    expect(() => encodeMessage({ type: METHOD_CALL, path: '/a' }, 1)).toThrow(MarshalError);
  });
});
