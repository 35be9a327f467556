/**
 * Dataset files by direct I/O: exact bytes and size through the bounce buffer (a last piece
 * that is not a whole block included), nothing left in the page cache, short reads at the
 * end of a file, and clear refusals. On a real filesystem (/var/tmp), where O_DIRECT is taken.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  BOUNCE_BYTES,
  createForWriting,
  endAt,
  openForReading,
  readInto,
  writeAt,
  type DatasetFd,
} from '../../src/randomx/direct-io';

const dir = fs.mkdtempSync('/var/tmp/vigil-direct-io-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Bytes of the file in the page cache, from fincore (mincore over a mapping of it). */
function resident(file: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return Number(out.toString().trim());
}

const HEADER = 4096;
// Three pieces and a tail of 64-byte items that does not fill a block, as a dataset's last.
const data = randomBytes(3 * BOUNCE_BYTES + 64 * 1001);

function writeFile(name: string, open: (f: string) => DatasetFd): [string, DatasetFd] {
  const file = path.join(dir, name);
  const f = open(file);
  writeAt(f, Buffer.alloc(HEADER, 7), 0);
  for (let at = 0; at < data.length; at += BOUNCE_BYTES) {
    writeAt(f, data.subarray(at, Math.min(at + BOUNCE_BYTES, data.length)), HEADER + at);
  }
  endAt(f, HEADER + data.length);
  fs.fsyncSync(f.fd);
  fs.closeSync(f.fd);
  return [file, f];
}

describe('dataset files by direct I/O', () => {
  it('writes the exact bytes and size, and leaves nothing in the page cache', () => {
    const [file, f] = writeFile('direct', createForWriting);
    expect(f.direct).toBe(true);
    expect(fs.statSync(file).size).toBe(HEADER + data.length);
    expect(resident(file)).toBe(0);
    const back = fs.readFileSync(file);
    expect(back.subarray(0, HEADER).equals(Buffer.alloc(HEADER, 7))).toBe(true);
    expect(back.subarray(HEADER).equals(data)).toBe(true);

    // The same file written through the page cache stays there: what the check above tells.
    const [buffered] = writeFile('buffered', (p) => ({
      fd: fs.openSync(p, 'wx', 0o600),
      direct: false,
    }));
    expect(resident(buffered)).toBeGreaterThan(data.length / 2);
  });

  it('reads back piece by piece, the last one short at the end of the file', async () => {
    const file = path.join(dir, 'direct');
    // Out of the page cache again (the check above read it through it).
    execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
    const f = openForReading(file);
    try {
      expect(f.direct).toBe(true);
      // More room than the file has: the read ends short, at the end of the file.
      const into = Buffer.alloc(data.length + BOUNCE_BYTES);
      const pieces: number[] = [];
      const got = await readInto(f, into, HEADER, (piece) => pieces.push(piece.length));
      expect(got).toBe(data.length);
      expect(into.subarray(0, got).equals(data)).toBe(true);
      expect(pieces).toEqual([BOUNCE_BYTES, BOUNCE_BYTES, BOUNCE_BYTES, 64 * 1001]);
      expect(resident(file)).toBe(0);
      // Past the end: nothing.
      expect(await readInto(f, into, HEADER + 4 * BOUNCE_BYTES, () => {})).toBe(0);
    } finally {
      fs.closeSync(f.fd);
    }
  });

  it('finds a truncated file short, and reads through the page cache alike', async () => {
    const file = path.join(dir, 'direct');
    fs.truncateSync(file, HEADER + BOUNCE_BYTES + 100);
    for (const f of [openForReading(file), { fd: fs.openSync(file, 'r'), direct: false }]) {
      try {
        const into = Buffer.alloc(3 * BOUNCE_BYTES);
        expect(await readInto(f, into, HEADER, () => {})).toBe(BOUNCE_BYTES + 100);
        expect(
          into.subarray(0, BOUNCE_BYTES + 100).equals(data.subarray(0, BOUNCE_BYTES + 100)),
        ).toBe(true);
      } finally {
        fs.closeSync(f.fd);
      }
    }
  });

  it('refuses an unaligned offset by name, and an existing file', async () => {
    const f = openForReading(path.join(dir, 'direct'));
    try {
      await expect(readInto(f, Buffer.alloc(64), HEADER + 64, () => {})).rejects.toThrow(
        /not aligned/,
      );
    } finally {
      fs.closeSync(f.fd);
    }
    expect(() => createForWriting(path.join(dir, 'direct'))).toThrow(/EEXIST/);
  });
});
