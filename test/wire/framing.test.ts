import { MessageFramer } from '../../src/bus/wire/framing';
import {
  encodeMessage,
  encodeRaw,
  FIELD,
  METHOD_CALL,
  SIGNAL,
  type MessageHeader,
} from '../../src/bus/wire/message';
import { DecodeError } from '../../src/bus/wire/reader';
import { parseSignature } from '../../src/bus/wire/signature';
import { decodeBody } from '../../src/bus/wire/unmarshal';

function call(member: string, signature = '', body: unknown[] = [], serial = 1): Buffer {
  return encodeMessage({ type: METHOD_CALL, path: '/a', member, signature, body }, serial);
}

/** Feed `stream` in chunks of `size` bytes; collect what the framer hands on. */
function feed(
  stream: Buffer,
  size: number,
  verdict: (h: MessageHeader) => 'read' | 'skip' = () => 'read',
): { headers: MessageHeader[]; bodies: unknown[][]; maxBuffered: number } {
  const headers: MessageHeader[] = [];
  const bodies: unknown[][] = [];
  const framer = new MessageFramer({
    header: (h) => {
      headers.push(h);
      return verdict(h) === 'read' ? true : undefined;
    },
    message: (h, buf) => {
      bodies.push(
        decodeBody(buf, h.littleEndian, parseSignature(h.signature), { base: h.headerLength }),
      );
    },
  });
  let maxBuffered = 0;
  for (let at = 0; at < stream.length; at += size) {
    framer.push(stream.subarray(at, at + size));
    maxBuffered = Math.max(maxBuffered, framer.bufferedBytes);
  }
  return { headers, bodies, maxBuffered };
}

test('messages come out whole however the stream is cut', () => {
  const stream = Buffer.concat([
    call('A', 's', ['first'], 1),
    call('B', 'ay', [Buffer.alloc(3000, 1)], 2),
    call('C', '', [], 3),
    encodeMessage(
      { type: SIGNAL, path: '/s', interface: 'a.b', member: 'S', signature: 'u', body: [7] },
      4,
      false,
    ),
  ]);
  for (const size of [1, 2, 3, 7, 16, 17, 100, 1000, stream.length]) {
    const { headers, bodies } = feed(stream, size);
    expect(headers.map((h) => h.member)).toEqual(['A', 'B', 'C', 'S']);
    expect(bodies[0]).toEqual(['first']);
    expect((bodies[1][0] as Buffer).equals(Buffer.alloc(3000, 1))).toBe(true);
    expect(bodies[2]).toEqual([]);
    expect(bodies[3]).toEqual([7]);
  }
});

test('a skipped body is dropped as it streams in, never held', () => {
  const big = call('Big', 'ay', [Buffer.alloc(8 * 1024 * 1024, 2)], 1);
  const after = call('After', 'i', [5], 2);
  const { headers, bodies, maxBuffered } = feed(Buffer.concat([big, after]), 65536, (h) =>
    h.member === 'Big' ? 'skip' : 'read',
  );
  expect(headers.map((h) => h.member)).toEqual(['Big', 'After']);
  expect(bodies).toEqual([[5]]);
  expect(maxBuffered).toBeLessThanOrEqual(65536);
});

test('a body that is read is filled once, the header decided before the body arrives', () => {
  const big = call('Big', 'ay', [Buffer.alloc(1024 * 1024, 3)], 1);
  let decidedAt = -1;
  let fed = 0;
  const framer = new MessageFramer({
    header: () => {
      decidedAt = fed;
      return true;
    },
    message: (_h, buf) => expect(buf.length).toBe(big.length),
  });
  for (let at = 0; at < big.length; at += 4096) {
    fed += Math.min(4096, big.length - at);
    framer.push(big.subarray(at, at + 4096));
  }
  expect(decidedAt).toBe(4096);
});

test('a header over the limit is skipped whole, the next message read', () => {
  const huge = encodeRaw({
    type: METHOD_CALL,
    serial: 1,
    fields: [
      [FIELD.PATH, 'o', '/a'],
      [FIELD.MEMBER, 's', 'M'],
      [99, 's', 'x'.repeat(100 * 1024)],
    ],
    body: Buffer.alloc(0),
  });
  const seen: string[] = [];
  let oversized = 0;
  const framer = new MessageFramer({
    header: (h) => (seen.push(h.member ?? ''), true),
    message: () => undefined,
    oversizedHeader: () => oversized++,
  });
  framer.push(Buffer.concat([huge, call('Next')]));
  expect(oversized).toBe(1);
  expect(seen).toEqual(['Next']);
});

test('a stream that is not D-Bus is an error, not a guess', () => {
  const framer = new MessageFramer({ header: () => true, message: () => undefined });
  expect(() => framer.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toThrow(DecodeError);
});
