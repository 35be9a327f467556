/**
 * The on-disk form of a fast-mode dataset, shared by the engine (which reads the header and
 * decides) and the workers (which move the items and check them):
 *
 *   0     "VIGILRXD"           magic
 *   8     u32 version (1)      u32 item size (64)
 *   16    u64 item count       u32 segment bytes, u32 segment count
 *   32    SHA-256 of the key
 *   64    SHA-256 of each segment of items, in order
 *   ...   SHA-256 of everything above (the header's own checksum)
 *   4096  the items, back to back
 *
 * Items are checked per segment so that several workers can load (and verify) one file in
 * parallel, straight into the dataset's memory.
 */
import { createHash } from 'node:crypto';

export const MAGIC = Buffer.from('VIGILRXD', 'latin1');
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 4096;
export const SEGMENT_BYTES = 64 * 1024 * 1024;
const DIGEST_BYTES = 32;
const TABLE_OFFSET = 64;

export interface DatasetFileHeader {
  itemSize: number;
  itemCount: number;
  segmentBytes: number;
  keyHash: Buffer;
  /** One SHA-256 per segment of items. */
  segments: Buffer[];
}

export const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

/** The name of a key's file: a hash of the key, so any key makes a safe file name. */
export function datasetFileName(key: Buffer): string {
  return `randomx-${sha256(key).toString('hex')}.dataset`;
}

export function segmentCount(itemBytes: number, segmentBytes = SEGMENT_BYTES): number {
  return Math.ceil(itemBytes / segmentBytes);
}

export function encodeHeader(h: DatasetFileHeader): Buffer {
  const out = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.writeUInt32LE(h.itemSize, 12);
  out.writeBigUInt64LE(BigInt(h.itemCount), 16);
  out.writeUInt32LE(h.segmentBytes, 24);
  out.writeUInt32LE(h.segments.length, 28);
  h.keyHash.copy(out, 32);
  h.segments.forEach((digest, i) => digest.copy(out, TABLE_OFFSET + i * DIGEST_BYTES));
  const end = TABLE_OFFSET + h.segments.length * DIGEST_BYTES;
  if (end + DIGEST_BYTES > HEADER_BYTES) throw new Error('too many segments for the header');
  sha256(out.subarray(0, end)).copy(out, end);
  return out;
}

/** The header, or the reason it is not one this version wrote for this key and size. */
export function decodeHeader(
  data: Buffer,
  expected: { keyHash: Buffer; itemSize: number; itemCount: number },
): DatasetFileHeader | string {
  if (data.length < HEADER_BYTES) return 'the header is truncated';
  if (!data.subarray(0, 8).equals(MAGIC)) return 'not a vigil dataset file';
  if (data.readUInt32LE(8) !== FORMAT_VERSION) return `format version ${data.readUInt32LE(8)}`;
  const itemSize = data.readUInt32LE(12);
  const itemCount = Number(data.readBigUInt64LE(16));
  const segmentBytes = data.readUInt32LE(24);
  const count = data.readUInt32LE(28);
  const end = TABLE_OFFSET + count * DIGEST_BYTES;
  if (end + DIGEST_BYTES > HEADER_BYTES) return 'the segment table is too long';
  if (!sha256(data.subarray(0, end)).equals(data.subarray(end, end + DIGEST_BYTES))) {
    return 'the header checksum does not match';
  }
  if (itemSize !== expected.itemSize || itemCount !== expected.itemCount) {
    return `it holds ${itemCount} items of ${itemSize} bytes, not ${expected.itemCount} of ${expected.itemSize}`;
  }
  if (segmentBytes === 0 || count !== segmentCount(itemSize * itemCount, segmentBytes)) {
    return 'its segments do not cover the items';
  }
  const keyHash = Buffer.from(data.subarray(32, 64));
  if (!keyHash.equals(expected.keyHash)) return 'it was built for another key';
  const segments = Array.from({ length: count }, (_, i) =>
    Buffer.from(
      data.subarray(TABLE_OFFSET + i * DIGEST_BYTES, TABLE_OFFSET + (i + 1) * DIGEST_BYTES),
    ),
  );
  return { itemSize, itemCount, segmentBytes, keyHash, segments };
}
