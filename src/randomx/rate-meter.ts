import { performance } from 'node:perf_hooks';

/** Hash rate over the last second or so, across all running jobs (the `HashRate` property). */
export class RateMeter {
  private count = 0;
  private since = performance.now();
  rate = 0;

  add(hashes: number): void {
    this.count += hashes;
  }

  /** Returns true when the rate changed. */
  sample(): boolean {
    const now = performance.now();
    const seconds = (now - this.since) / 1000;
    if (seconds < 0.5) return false;
    const rate = this.count / seconds;
    this.count = 0;
    this.since = now;
    if (rate === this.rate) return false;
    this.rate = rate;
    return true;
  }

  set(rate: number): void {
    this.rate = rate;
  }
}
