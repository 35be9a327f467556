/** Milliseconds since the epoch (0 = never) as the contract's `t`: microseconds, 0 = unknown. */
export function usec(ms: number): bigint {
  return ms > 0 ? BigInt(Math.round(ms)) * 1000n : 0n;
}
