/**
 * Coordination of one fast-mode dataset fill (loaded from its file or built, by one worker or
 * several), which several jobs may wait for at once: it runs while any of them wants it,
 * pauses when all of them are paused, and is cancelled when the last one leaves. Workers
 * claim their share from shared counters, so more of them can join a fill under way.
 */
import { cancelled } from './control';
import type { WorkerPool } from './dispatch';
import { Control, type InitDatasetRequest, type LoadDatasetRequest } from './protocol';
import type { JobHooks } from './types';

type FillRequest = InitDatasetRequest | LoadDatasetRequest;

/** How often a waiting job's progress is refreshed from the shared item counter. */
const PROGRESS_POLL_MS = 100;

export class DatasetBuild {
  readonly control = new Int32Array(new SharedArrayBuffer(4));
  readonly progress = new Int32Array(new SharedArrayBuffer(4));
  /** The next chunk (building) or segment (loading) to claim. */
  readonly next = new Int32Array(new SharedArrayBuffer(4));
  private readonly waiters = new Set<JobHooks>();
  private readonly pausedWaiters = new Set<JobHooks>();
  private readonly parts = new Set<Promise<unknown>>();
  private current: FillRequest | undefined;
  promise: Promise<void> = Promise.resolve();

  constructor(readonly items: number) {}

  /** The shared words a fill request carries. */
  get words(): {
    next: SharedArrayBuffer;
    control: SharedArrayBuffer;
    progress: SharedArrayBuffer;
  } {
    return {
      next: this.next.buffer as SharedArrayBuffer,
      control: this.control.buffer as SharedArrayBuffer,
      progress: this.progress.buffer as SharedArrayBuffer,
    };
  }

  /** Start a stage of the fill (loading, or building) on `workers` workers of `pool`. */
  run(pool: WorkerPool, request: FillRequest, workers: number): void {
    this.current = request;
    this.help(pool, workers);
  }

  /** Add workers to the stage under way (a job joining a fill started in the background). */
  help(pool: WorkerPool, workers: number): void {
    const request = this.current;
    if (!request) return;
    for (let i = 0; i < workers; i++) {
      const part = pool.run(request);
      this.parts.add(part);
      void part.then(
        () => this.parts.delete(part),
        () => this.parts.delete(part),
      );
    }
  }

  /** The replies of every worker of the stage, helpers included, once all have returned. */
  async settled<T>(): Promise<Array<PromiseSettledResult<T>>> {
    const results: Array<PromiseSettledResult<T>> = [];
    while (this.parts.size > 0) {
      results.push(...(await Promise.allSettled([...this.parts] as Array<Promise<T>>)));
    }
    this.current = undefined;
    return results;
  }

  /** After a file turned out unusable: start over, as a build. */
  restart(): void {
    Atomics.store(this.progress, 0, 0);
    Atomics.store(this.next, 0, 0);
    if (Atomics.load(this.control, 0) === Control.STOP) Atomics.store(this.control, 0, Control.RUN);
    this.updateControl();
  }

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
