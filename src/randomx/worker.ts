/**
 * Piscina worker: one RandomX VM per thread, bound by address to the cache/dataset the engine
 * shares. Long loops check the job's control word between hashes (cancel, stop, pause with
 * Atomics.wait so a paused job uses no CPU) and flush progress about every 100 ms.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { workerData } from 'node:worker_threads';
import { Flag, HASH_SIZE, native, type Address } from './native';
import {
  adviseCacheHugePages,
  moveScratchpadToHugePage,
  restoreScratchpad,
  type MovedScratchpad,
} from './library-memory';
import {
  loadDataset,
  rest,
  saveDataset,
  setDutyCycle,
  verifyItems,
  waitWhilePaused,
} from './dataset-io';
import {
  Control,
  DATASET_CHUNK_ITEMS,
  REPORT_INTERVAL_MS,
  type Binding,
  type HashBatchReply,
  type HashBatchRequest,
  type HashRequest,
  type AllocCacheReply,
  type AllocCacheRequest,
  type InitCacheRequest,
  type InitDatasetReply,
  type InitDatasetRequest,
  type ScanReport,
  type ScanRequest,
  type WorkerRequest,
} from './protocol';

let vm: Address = 0;
let vmSerial = -1;
let vmMode = '';
let movedScratchpad: MovedScratchpad | undefined;

function bindVm(binding: Binding): Address {
  if (vm !== 0 && vmSerial === binding.serial && vmMode === binding.mode) return vm;
  const rx = native();
  if (movedScratchpad) restoreScratchpad(movedScratchpad);
  movedScratchpad = undefined;
  if (vm !== 0) rx.destroyVm(vm);
  vm = 0;
  vmSerial = -1;
  const flags = binding.flags | (binding.mode === 'fast' ? Flag.FULL_MEM : 0);
  let created = binding.largePages
    ? rx.createVm(flags | Flag.LARGE_PAGES, binding.cache, binding.dataset)
    : 0;
  if (created === 0) {
    created = rx.createVm(flags, binding.cache, binding.dataset);
    if (created !== 0 && binding.transparentHugePages) {
      const memory = binding.mode === 'fast' ? binding.dataset : binding.cache;
      movedScratchpad = moveScratchpadToHugePage(created, memory);
    }
  }
  if (created === 0) throw new Error('randomx_create_vm failed (out of memory?)');
  vm = created;
  vmSerial = binding.serial;
  vmMode = binding.mode;
  return vm;
}

/** A non-empty view: koffi turns an empty buffer into NULL, which librandomx must never see. */
const EMPTY = Buffer.alloc(1);
function nonEmpty(input: Uint8Array): Uint8Array {
  return input.length === 0 ? EMPTY : input;
}

function allocCache(req: AllocCacheRequest): AllocCacheReply {
  const rx = native();
  let cache = req.largePages ? rx.allocCache(req.flags | Flag.LARGE_PAGES) : 0;
  const largePages = cache !== 0;
  let advised = 0;
  if (cache === 0) {
    cache = rx.allocCache(req.flags);
    if (cache !== 0 && req.transparentHugePages) advised = adviseCacheHugePages(cache);
  }
  if (cache === 0) throw new Error('cannot allocate the RandomX cache (256 MiB)');
  return { cache, largePages, advised };
}

function initCache(req: InitCacheRequest): void {
  native().initCache(req.cache, nonEmpty(req.key), req.key.length);
}

function initDataset(req: InitDatasetRequest): InitDatasetReply {
  const rx = native();
  const control = new Int32Array(req.control);
  const progress = new Int32Array(req.progress);
  const next = new Int32Array(req.next);
  for (;;) {
    if (waitWhilePaused(control) !== Control.RUN) return { completed: false };
    const item = Atomics.add(next, 0, 1) * DATASET_CHUNK_ITEMS;
    if (item >= req.itemCount) return { completed: true };
    const count = Math.min(DATASET_CHUNK_ITEMS, req.itemCount - item);
    const started = performance.now();
    rx.initDataset(req.dataset, req.cache, item, count);
    Atomics.add(progress, 0, count);
    rest(control, started);
  }
}

function hash(req: HashRequest): Uint8Array {
  const machine = bindVm(req.binding);
  const out = Buffer.alloc(HASH_SIZE);
  native().calculateHash(machine, nonEmpty(req.input), req.input.length, out);
  return out;
}

function hashBatch(req: HashBatchRequest): HashBatchReply {
  const rx = native();
  const machine = bindVm(req.binding);
  const data = new Uint8Array(req.data);
  const offsets = new Uint32Array(req.offsets);
  const output = new Uint8Array(req.output);
  const counters = new Int32Array(req.counters);
  const control = new Int32Array(req.control);
  const total = offsets.length - 1;
  const input = (i: number): Uint8Array => nonEmpty(data.subarray(offsets[i], offsets[i + 1]));
  const size = (i: number): number => offsets[i + 1] - offsets[i];

  let hashed = 0;
  let unreported = 0;
  let lastReport = performance.now();
  let current = Atomics.add(counters, 0, 1);
  if (current < total) rx.calculateHashFirst(machine, input(current), size(current));
  while (current < total) {
    // A stopped batch leaves its pending hash unfinished; the next hash_first resets the VM.
    if (waitWhilePaused(control) !== Control.RUN) break;
    const next = Atomics.add(counters, 0, 1);
    const out = output.subarray(current * HASH_SIZE, (current + 1) * HASH_SIZE);
    if (next < total) rx.calculateHashNext(machine, input(next), size(next), out);
    else rx.calculateHashLast(machine, out);
    hashed++;
    unreported++;
    current = next;
    const now = performance.now();
    if (now - lastReport >= REPORT_INTERVAL_MS) {
      Atomics.add(counters, 1, unreported);
      unreported = 0;
      lastReport = now;
    }
  }
  Atomics.add(counters, 1, unreported);
  return { hashed };
}

function scan(req: ScanRequest): number {
  const port = req.port;
  try {
    const rx = native();
    const machine = bindVm(req.binding);
    const blob = Buffer.from(req.blob);
    const size = blob.length;
    const offset = req.nonceOffset;
    const end = req.end;
    const counter = new BigInt64Array(req.counter);
    const control = new Int32Array(req.control);
    const out = Buffer.alloc(HASH_SIZE);
    const target = req.target;
    const targetHi = target ? target.hi : -1;
    const targetLo = target ? target.lo : -1;

    let hashes = 0;
    let found: Array<[number, Uint8Array]> = [];
    const report = (watermark: number, final = false): void => {
      const message: ScanReport = { hashes, watermark, found, final };
      port.postMessage(message);
      hashes = 0;
      found = [];
    };

    let total = 0;
    let current = Number(Atomics.add(counter, 0, 1n));
    if (current < end) {
      blob.writeUInt32LE(current, offset);
      rx.calculateHashFirst(machine, blob, size);
    }
    let lastReport = performance.now();
    while (current < end) {
      const state = Atomics.load(control, 0);
      if (state !== Control.RUN) {
        if (state !== Control.PAUSE) break;
        report(current);
        if (waitWhilePaused(control) !== Control.RUN) break;
        lastReport = performance.now();
      }
      const next = Number(Atomics.add(counter, 0, 1n));
      if (next < end) {
        blob.writeUInt32LE(next, offset);
        rx.calculateHashNext(machine, blob, size, out);
      } else {
        rx.calculateHashLast(machine, out);
      }
      hashes++;
      total++;
      if (targetHi >= 0) {
        const hi = out.readUInt32LE(28);
        if (hi < targetHi || (hi === targetHi && out.readUInt32LE(24) <= targetLo)) {
          found.push([current, Uint8Array.from(out)]);
        }
      }
      current = next;
      const now = performance.now();
      if (now - lastReport >= REPORT_INTERVAL_MS) {
        report(current);
        lastReport = now;
      }
    }
    report(Math.min(current, end), true);
    return total;
  } finally {
    port.close();
  }
}

// A background worker lowers its own priority (the shipped unit allows setpriority for this).
// Where that is refused (a stricter sandbox), it yields instead: it rests between chunks of
// its work, so that it takes at most a fifth of a core from hashing.
const nice = (workerData as { nice?: number } | null)?.nice;
if (nice) {
  try {
    os.setPriority(nice);
  } catch {
    setDutyCycle(0.2);
  }
}

export default function handle(req: WorkerRequest): unknown {
  switch (req.op) {
    case 'allocCache':
      return allocCache(req);
    case 'initCache':
      return initCache(req);
    case 'initDataset':
      return initDataset(req);
    case 'loadDataset':
      return loadDataset(req);
    case 'verifyItems':
      return verifyItems(req);
    case 'saveDataset':
      return saveDataset(req);
    case 'hash':
      return hash(req);
    case 'hashBatch':
      return hashBatch(req);
    case 'scan':
      return scan(req);
  }
}
