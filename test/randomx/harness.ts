/**
 * A minimal task for driving the RandomX engine without a bus: real AbortController cancel,
 * real pause notifications, and a record of what the job reported.
 */
import type { SearchHooks, SearchState } from '../../src/randomx/engine';

export class TestJob implements SearchHooks {
  private readonly controller = new AbortController();
  private readonly listeners = new Set<(paused: boolean) => void>();
  paused = false;
  done = 0;
  total = 0;
  readonly phases: Array<[string, number | undefined]> = [];
  readonly checkpoints: SearchState[] = [];
  private progressWaiters: Array<{ at: number; resolve: () => void }> = [];

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  cancel(): void {
    this.controller.abort();
  }

  pause(): void {
    this.paused = true;
    for (const l of this.listeners) l(true);
  }

  resume(): void {
    this.paused = false;
    for (const l of this.listeners) l(false);
  }

  onPauseChange(listener: (paused: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  progress(done: number | bigint, total?: number | bigint): void {
    this.done = Math.max(this.done, Number(done));
    if (total !== undefined) this.total = Number(total);
    this.progressWaiters = this.progressWaiters.filter((w) => {
      if (this.done < w.at) return true;
      w.resolve();
      return false;
    });
  }

  setPhase(phase: string, total?: number | bigint): void {
    this.phases.push([phase, total === undefined ? undefined : Number(total)]);
    this.done = 0;
  }

  checkpoint(state: SearchState): void {
    this.checkpoints.push(state);
  }

  /** Resolves once the job has reported at least `at` units done in its current phase. */
  reached(at: number): Promise<void> {
    if (this.done >= at) return Promise.resolve();
    return new Promise((resolve) => this.progressWaiters.push({ at, resolve }));
  }
}

export const VECTORS: ReadonlyArray<[string, string, string]> = [
  [
    'test key 000',
    'This is a test',
    '639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f',
  ],
  [
    'test key 000',
    'Lorem ipsum dolor sit amet',
    '300a0adb47603dedb42228ccb2b211104f4da45af709cd7547cd049e9489c969',
  ],
  [
    'test key 000',
    'sed do eiusmod tempor incididunt ut labore et dolore magna aliqua',
    'c36d4ed4191e617309867ed66a443be4075014e2b061bcdaf9ce7b721d2b77a8',
  ],
];

/** The blob with `nonce` written little-endian at `offset`, as a search hashes it. */
export function withNonce(blob: Buffer, offset: number, nonce: number): Buffer {
  const copy = Buffer.from(blob);
  copy.writeUInt32LE(nonce, offset);
  return copy;
}

/** Process CPU seconds (all threads) spent while `fn` runs. */
export async function cpuSecondsDuring(fn: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
