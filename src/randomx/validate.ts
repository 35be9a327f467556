/**
 * Limits and argument checks. Everything reaching librandomx passes through here first: a bad
 * native call would take the whole daemon down, a bad argument only earns a named error.
 */
import { VigilError } from '../core/errors';
import { MODES, type Mode } from './protocol';

export const LIMITS = {
  /** Key bytes (Monero uses a 32-byte seed hash). */
  maxKeyBytes: 256,
  /** Bytes of one Hash / HashBatch input. */
  maxInputBytes: 64 * 1024,
  /** Inputs in one HashBatch. */
  maxBatchInputs: 65536,
  /** Total bytes of one HashBatch. */
  maxBatchBytes: 4 * 1024 * 1024,
  /** Bytes of a Search blob (a Monero hashing blob is about 76 bytes). */
  maxBlobBytes: 4096,
  /** Nonces of one Benchmark. */
  maxBenchmarkNonces: 10_000_000,
  /** Answers one Search keeps; it ends early (result `truncated`) once it has this many. */
  maxFound: 10_000,
} as const;

export const NONCE_SPACE = 2 ** 32;
export const U64_MAX = (1n << 64n) - 1n;

const invalid = (message: string): VigilError => new VigilError('InvalidArgument', message);
const tooLarge = (message: string): VigilError => new VigilError('LimitExceeded', message);

export function toBytes(value: unknown, what: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.length);
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    return Buffer.from(value as number[]);
  }
  throw invalid(`${what} must be a byte array`);
}

export function checkKey(key: Buffer): Buffer {
  if (key.length === 0) throw invalid('key must not be empty');
  if (key.length > LIMITS.maxKeyBytes) {
    throw tooLarge(`key is ${key.length} bytes; the limit is ${LIMITS.maxKeyBytes}`);
  }
  return key;
}

export function checkInput(input: Buffer, what = 'input'): Buffer {
  if (input.length > LIMITS.maxInputBytes) {
    throw tooLarge(`${what} is ${input.length} bytes; the limit is ${LIMITS.maxInputBytes}`);
  }
  return input;
}

export function checkBatch(inputs: readonly Buffer[]): readonly Buffer[] {
  if (inputs.length === 0) throw invalid('inputs must not be empty');
  if (inputs.length > LIMITS.maxBatchInputs) {
    throw tooLarge(`${inputs.length} inputs; the limit is ${LIMITS.maxBatchInputs}`);
  }
  let total = 0;
  inputs.forEach((input, i) => {
    checkInput(input, `input ${i}`);
    total += input.length;
  });
  if (total > LIMITS.maxBatchBytes) {
    throw tooLarge(`inputs total ${total} bytes; the limit is ${LIMITS.maxBatchBytes}`);
  }
  return inputs;
}

export function checkBlob(blob: Buffer, nonceOffset: number): void {
  if (blob.length > LIMITS.maxBlobBytes) {
    throw tooLarge(`blob is ${blob.length} bytes; the limit is ${LIMITS.maxBlobBytes}`);
  }
  if (!Number.isInteger(nonceOffset) || nonceOffset < 0) {
    throw invalid('nonce_offset must be a non-negative integer');
  }
  if (nonceOffset + 4 > blob.length) {
    throw invalid(
      `nonce_offset ${nonceOffset} + 4 runs past the end of the ${blob.length}-byte blob`,
    );
  }
}

export function checkDifficulty(value: unknown): bigint {
  let difficulty: bigint;
  if (typeof value === 'bigint') difficulty = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) difficulty = BigInt(value);
  else if (typeof value === 'string' && /^[0-9]+$/.test(value)) difficulty = BigInt(value);
  else throw invalid('difficulty must be an unsigned 64-bit integer');
  if (difficulty === 0n) throw invalid('difficulty must be at least 1');
  if (difficulty > U64_MAX) throw invalid('difficulty must fit in 64 bits');
  return difficulty;
}

/** The acceptance bound floor(2^64 / difficulty), split in 32-bit halves for the worker. */
export function targetOf(difficulty: bigint): { hi: number; lo: number } {
  const target = (1n << 64n) / difficulty;
  return { hi: Number(target >> 32n), lo: Number(target & 0xffffffffn) };
}

/** Whether a hash meets the difficulty, by the rule of DESIGN.md (for checks and tests). */
export function meetsDifficulty(hash: Buffer, difficulty: bigint): boolean {
  return hash.readBigUInt64LE(24) <= (1n << 64n) / difficulty;
}

export function checkMode(value: unknown): Mode {
  if (typeof value !== 'string' || !(MODES as readonly string[]).includes(value)) {
    throw invalid(`unknown mode ${JSON.stringify(value)}; expected light or fast`);
  }
  return value as Mode;
}

export function checkThreads(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalid('threads must be a positive integer');
  }
  if (value === 0) throw invalid('threads must be at least 1');
  return value;
}

export function checkU32(value: unknown, what: string): number {
  if (typeof value === 'bigint') value = Number(value);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= NONCE_SPACE) {
    throw invalid(`${what} must be an unsigned 32-bit integer`);
  }
  return value;
}

/** A nonce range [start, start + count) inside the 32-bit nonce space. */
export function checkRange(start: number, count: number | undefined): number {
  const available = NONCE_SPACE - start;
  if (count === undefined) return available;
  if (!Number.isInteger(count) || count < 1) throw invalid('count must be at least 1');
  if (count > available) {
    throw invalid(`start_nonce ${start} + count ${count} runs past the 32-bit nonce space`);
  }
  return count;
}

export function checkNonces(value: unknown): number {
  const nonces = checkU32(value, 'nonces');
  if (nonces === 0) throw invalid('nonces must be at least 1');
  if (nonces > LIMITS.maxBenchmarkNonces) {
    throw tooLarge(`${nonces} nonces; the limit is ${LIMITS.maxBenchmarkNonces}`);
  }
  return nonces;
}

/** Refuse option names a method does not know, so a typo is an error and not a silent default. */
export function checkOptionNames(options: Record<string, unknown>, known: readonly string[]): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw invalid(`unknown option ${JSON.stringify(name)}; known: ${known.join(', ')}`);
    }
  }
}
