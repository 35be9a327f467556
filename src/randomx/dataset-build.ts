/**
 * Coordination of one fast-mode dataset fill (built by several workers), which several jobs
 * may wait for at once: it runs while any of them wants it, pauses when all of them are
 * paused, and is cancelled when the last one leaves.
 */
import { cancelled } from './control';
import { Control } from './protocol';
import type { JobHooks } from './types';

/** How often a waiting job's progress is refreshed from the shared item counter. */
const PROGRESS_POLL_MS = 100;

export class DatasetBuild {
  readonly control = new Int32Array(new SharedArrayBuffer(4));
  readonly progress = new Int32Array(new SharedArrayBuffer(4));
  private readonly waiters = new Set<JobHooks>();
  private readonly pausedWaiters = new Set<JobHooks>();
  promise: Promise<void> = Promise.resolve();

  constructor(readonly items: number) {}

  /** Every waiter left: the workers are stopping and the build will fail as cancelled. */
  get abandoned(): boolean {
    return Atomics.load(this.control, 0) === Control.CANCEL;
  }

  /** Wait for the build as one job: its progress, pause and cancel count towards the build. */
  async join(hooks: JobHooks): Promise<void> {
    this.waiters.add(hooks);
    if (hooks.paused) this.pausedWaiters.add(hooks);
    this.updateControl();
    const report = (): void => hooks.progress(Atomics.load(this.progress, 0), this.items);
    const timer = setInterval(report, PROGRESS_POLL_MS);
    const unsubscribe = hooks.onPauseChange((paused) => {
      if (paused) this.pausedWaiters.add(hooks);
      else this.pausedWaiters.delete(hooks);
      this.updateControl();
    });
    let onAbort = (): void => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(cancelled());
      if (hooks.signal.aborted) onAbort();
      else hooks.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.promise, aborted]);
      report();
    } finally {
      clearInterval(timer);
      unsubscribe();
      hooks.signal.removeEventListener('abort', onAbort);
      this.waiters.delete(hooks);
      this.pausedWaiters.delete(hooks);
      this.updateControl();
    }
  }

  private updateControl(): void {
    if (Atomics.load(this.control, 0) === Control.CANCEL) return;
    let state: number = Control.RUN;
    if (this.waiters.size === 0) state = Control.CANCEL;
    else if (this.pausedWaiters.size === this.waiters.size) state = Control.PAUSE;
    Atomics.store(this.control, 0, state);
    Atomics.notify(this.control, 0);
  }
}
