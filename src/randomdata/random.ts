import { randomFillSync, randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { invalidArgument } from '../core/errors';
import { typed, type TypedDict } from '../core/typed';
import type { Json, TaskContext, TaskKind } from '../tasks/types';

export const QUICK_MAX_BITS = 65536;
export const SLOW_MAX_BITS = 4096;
export const SLOW_KIND = 'slow-random';

function checkBits(bits: unknown, max: number, what: string): number {
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 1 || bits > max) {
    throw invalidArgument(`${what}: bits must be between 1 and ${max}, got ${String(bits)}`);
  }
  return bits;
}

/**
 * Random bytes from the CSPRNG, drawn a page at a time and each handed out once: asking
 * OpenSSL for two bytes per call cost more than the rest of a quick(16) call together.
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function secureRandomBytes(n: number): Buffer {
  if (n > pool.length) return randomFillSync(Buffer.alloc(n));
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + n));
  pool.fill(0, poolAt, poolAt + n); // a byte handed out is not kept
  poolAt += n;
  return out;
}

/**
 * A uniformly random integer in [0, 2^bits) from the kernel's CSPRNG, in decimal.
 * Whole random bytes with the excess high bits masked off keep every value equally likely.
 */
export function quickRandom(bits: number): string {
  checkBits(bits, QUICK_MAX_BITS, 'quick');
  const bytes = secureRandomBytes(Math.ceil(bits / 8));
  const excess = bytes.length * 8 - bits;
  bytes[0] &= 0xff >> excess;
  return BigInt('0x' + (bytes.toString('hex') || '0')).toString(10);
}

export interface SlowParams {
  bits: number;
  paceMs: number;
  [key: string]: Json;
}

/**
 * The tutorial's `slow`: one random bit per pace interval, so the caller sees a long job.
 * Pause stops the clock; cancel ends it at the next bit.
 */
export const slowRandomKind: TaskKind<SlowParams> = {
  name: SLOW_KIND,
  unit: 'bits',
  cancelable: true,
  validate(params) {
    checkBits(params.bits, SLOW_MAX_BITS, 'slow');
  },
  async run(ctx: TaskContext, { bits, paceMs }): Promise<TypedDict> {
    ctx.setPhase('drawing', bits);
    let value = 0n;
    for (let i = 0; i < bits; i++) {
      await sleep(paceMs, undefined, { signal: ctx.signal });
      await ctx.pausePoint();
      value = (value << 1n) | BigInt(randomInt(2));
      ctx.progress(i + 1);
    }
    return { result: typed.s(value.toString(10)), bits: typed.u(bits) };
  },
};
