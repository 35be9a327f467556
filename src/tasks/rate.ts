/**
 * Units-per-second over a sliding time window, so Rate and ExpectedEndTime follow the recent
 * pace rather than the average since start (a task that speeds up or stalls shows it).
 */
export class RateWindow {
  private samples: { at: number; done: number }[] = [];

  constructor(private readonly windowMs = 5000) {}

  add(at: number, done: number): void {
    this.samples.push({ at, done });
    const cutoff = at - this.windowMs;
    // Keep one sample older than the window so the span always covers the whole window.
    while (this.samples.length > 2 && this.samples[1].at <= cutoff) this.samples.shift();
  }

  reset(): void {
    this.samples = [];
  }

  /** Units per second, or 0 while there is not enough to tell. */
  rate(): number {
    if (this.samples.length < 2) return 0;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.at - first.at) / 1000;
    if (seconds <= 0) return 0;
    return Math.max(0, (last.done - first.done) / seconds);
  }
}
