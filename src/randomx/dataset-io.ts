/**
 * Dataset files, on the worker side: loading a file straight into a dataset's memory with a
 * checksum per segment, recomputing single items to compare them with what was loaded, and
 * writing a dataset out atomically (temporary file, fsync, rename, fsync of the directory).
 *
 * A segment moves in pieces of PIECE_BYTES, each checksummed right after it was read (or
 * before it is written), while it is still in the CPU's cache: one pass over the memory
 * instead of two.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import koffi from 'koffi';
import {
  HEADER_BYTES,
  SEGMENT_BYTES,
  SegmentChecksum,
  encodeHeader,
  newChecksumKey,
  segmentCount,
} from './dataset-file';
import {
  BOUNCE_BYTES,
  createForWriting,
  endAt,
  openForReading,
  readInto,
  writeAt,
} from './direct-io';
import { DATASET_ITEM_SIZE, native, type Address } from './native';
import {
  Control,
  type LoadDatasetReply,
  type LoadDatasetRequest,
  type SaveDatasetReply,
  type SaveDatasetRequest,
  type VerifyItemsReply,
  type VerifyItemsRequest,
} from './protocol';

/** Share of the time this worker works when it cannot lower its priority (1: no rest). */
let dutyCycle = 1;

export function setDutyCycle(share: number): void {
  dutyCycle = share;
}

/**
 * After a piece of work begun at `started`: rest long enough to keep to the duty cycle, woken
 * early when the control word changes (a cancel stays prompt).
 */
export function rest(control: Int32Array, started: number): void {
  if (dutyCycle >= 1) return;
  const worked = performance.now() - started;
  const state = Atomics.load(control, 0);
  if (state === Control.RUN)
    Atomics.wait(control, 0, state, (worked * (1 - dutyCycle)) / dutyCycle);
}

/** Blocks (without CPU) while paused; returns the control word that ended the wait. */
export function waitWhilePaused(control: Int32Array): number {
  let state = Atomics.load(control, 0);
  while (state === Control.PAUSE) {
    Atomics.wait(control, 0, Control.PAUSE);
    state = Atomics.load(control, 0);
  }
  return state;
}

/** `bytes` of native memory at `address`, without a copy. */
function view(address: Address, bytes: number): Uint8Array {
  return new Uint8Array(koffi.view(BigInt(address), bytes));
}

/** Bytes moved and checksummed at a time: one huge page, small enough to stay in L2/L3. */
const PIECE_BYTES = BOUNCE_BYTES;

/** CPU seconds this thread has used (utime + stime from /proc/thread-self/stat). */
export function threadCpuSeconds(): number {
  try {
    const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

export async function loadDataset(req: LoadDatasetRequest): Promise<LoadDatasetReply> {
  const control = new Int32Array(req.control);
  const progress = new Int32Array(req.progress);
  const next = new Int32Array(req.next);
  const memory = native().datasetMemory(req.dataset);
  const segments = segmentCount(req.itemBytes, req.segmentBytes);
  const cpu0 = threadCpuSeconds();
  const t0 = performance.now();
  const file = openForReading(req.path);
  const finish = (completed: boolean, corrupt?: string): LoadDatasetReply => ({
    completed,
    corrupt,
    seconds: (performance.now() - t0) / 1000,
    cpuSeconds: threadCpuSeconds() - cpu0,
    direct: file.direct,
  });
  const stopAll = (corrupt: string): LoadDatasetReply => {
    // The siblings stop too: the dataset will be built instead.
    Atomics.store(control, 0, Control.STOP);
    Atomics.notify(control, 0);
    return finish(false, corrupt);
  };
  try {
    for (;;) {
      if (waitWhilePaused(control) !== Control.RUN) return finish(false);
      const segment = Atomics.add(next, 0, 1);
      if (segment >= segments) return finish(true);
      const offset = segment * req.segmentBytes;
      const bytes = Math.min(req.segmentBytes, req.itemBytes - offset);
      const into = view(memory + offset, bytes);
      const started = performance.now();
      const checksum = new SegmentChecksum(req.checksumKey, segment);
      const got = await readInto(file, into, HEADER_BYTES + offset, (piece) =>
        checksum.update(piece),
      );
      if (got !== bytes) return stopAll(`the file is truncated (segment ${segment})`);
      if (!checksum.digest().equals(req.digests[segment])) {
        return stopAll(`segment ${segment} does not match its checksum`);
      }
      Atomics.add(progress, 0, bytes / DATASET_ITEM_SIZE);
      rest(control, started);
    }
  } finally {
    fs.closeSync(file.fd);
  }
}

export function verifyItems(req: VerifyItemsRequest): VerifyItemsReply {
  const rx = native();
  const memory = rx.datasetMemory(req.dataset);
  const mismatches: number[] = [];
  for (const item of req.items) {
    const at = view(memory + item * DATASET_ITEM_SIZE, DATASET_ITEM_SIZE);
    const loaded = Buffer.from(at);
    // Recomputed in place: a mismatch rejects the whole dataset anyway.
    rx.initDataset(req.dataset, req.cache, item, 1);
    if (!loaded.equals(at)) mismatches.push(item);
  }
  return { mismatches };
}

export function saveDataset(req: SaveDatasetRequest): SaveDatasetReply {
  const control = new Int32Array(req.control);
  const memory = native().datasetMemory(req.dataset);
  const cpu0 = threadCpuSeconds();
  const file = createForWriting(req.tempPath);
  const reply = (saved: boolean): SaveDatasetReply => ({
    saved,
    direct: file.direct,
    cpuSeconds: threadCpuSeconds() - cpu0,
  });
  let renamed = false;
  try {
    // The header goes in last, over the first block, once every segment's checksum is known.
    const checksumKey = newChecksumKey();
    const digests: Buffer[] = [];
    for (let offset = 0; offset < req.itemBytes; offset += SEGMENT_BYTES) {
      if (Atomics.load(control, 0) === Control.CANCEL) return reply(false);
      const started = performance.now();
      const segment = view(memory + offset, Math.min(SEGMENT_BYTES, req.itemBytes - offset));
      const checksum = new SegmentChecksum(checksumKey, digests.length);
      for (let at = 0; at < segment.length; at += PIECE_BYTES) {
        const piece = segment.subarray(at, Math.min(at + PIECE_BYTES, segment.length));
        checksum.update(piece);
        writeAt(file, piece, HEADER_BYTES + offset + at);
      }
      digests.push(checksum.digest());
      rest(control, started);
    }
    const header = encodeHeader({
      itemSize: DATASET_ITEM_SIZE,
      itemCount: req.itemBytes / DATASET_ITEM_SIZE,
      segmentBytes: SEGMENT_BYTES,
      keyHash: Buffer.from(req.keyHash),
      checksumKey,
      segments: digests,
    });
    writeAt(file, header, 0);
    endAt(file, HEADER_BYTES + req.itemBytes);
    fs.fsyncSync(file.fd);
    fs.closeSync(file.fd);
    fs.renameSync(req.tempPath, req.finalPath);
    renamed = true;
    const dir = fs.openSync(path.dirname(req.finalPath), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
    return reply(true);
  } finally {
    if (!renamed) {
      try {
        fs.closeSync(file.fd);
      } catch {
        // already closed before the rename failed
      }
      fs.rmSync(req.tempPath, { force: true });
    }
  }
}
