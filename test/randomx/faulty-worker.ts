/**
 * A RandomX worker for tests only: the real one, except that a job whose data starts with a
 * fault marker fails in the worker, by throwing or by killing its thread.
 */
import type { WorkerRequest } from '../../src/randomx/protocol';
import handle from '../../src/randomx/worker';

export const FAULTY_WORKER = __filename;
export const THROW_MARKER = 'vigil-test:throw';
export const EXIT_MARKER = 'vigil-test:exit';

/** A 76-byte blob (nonce at 39) or input carrying a fault marker. */
export function faultBlob(marker: string): Buffer {
  const blob = Buffer.alloc(76, 0x33);
  blob.write(marker, 0, 'latin1');
  return blob;
}

function marker(req: WorkerRequest): string {
  let data: Uint8Array | undefined;
  if (req.op === 'scan') data = req.blob;
  else if (req.op === 'hashBatch') data = new Uint8Array(req.data);
  return data ? Buffer.from(data.subarray(0, 32)).toString('latin1') : '';
}

export default function faultyHandle(req: WorkerRequest): unknown {
  const fault = marker(req);
  if (fault.startsWith(THROW_MARKER)) throw new Error('injected worker fault');
  if (fault.startsWith(EXIT_MARKER)) process.exit(70);
  return handle(req);
}
