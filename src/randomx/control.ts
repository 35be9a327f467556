/**
 * Control words: one Int32 in shared memory per job, which the engine sets and the workers
 * read between hashes (run, pause, stop for a job switch, cancel).
 */
import { VigilError, isVigilError, messageOf } from '../core/errors';
import { Control } from './protocol';
import type { JobHooks } from './types';

export const cancelled = (): VigilError => new VigilError('Cancelled', 'the task was cancelled');

export function workerFailure(e: unknown): VigilError {
  if (isVigilError(e)) return e;
  return new VigilError('Failed', `RandomX worker failed: ${messageOf(e)}`);
}

export const once = (fn: () => void): (() => void) => {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
};

/** A job's control word, shared with its workers: cancel, stop (job switch) and pause. */
export class JobControl {
  private readonly word = new Int32Array(new SharedArrayBuffer(4));
  private cancelled = false;
  private stopped = false;

  constructor(private paused: boolean) {
    this.update();
  }

  get buffer(): SharedArrayBuffer {
    return this.word.buffer as SharedArrayBuffer;
  }

  cancel(): void {
    this.cancelled = true;
    this.update();
  }

  stop(): void {
    this.stopped = true;
    this.update();
  }

  /** Cancel wins over stop, stop over pause, so a late Resume never restarts stopped workers. */
  private update(): void {
    let state: number = Control.RUN;
    if (this.cancelled) state = Control.CANCEL;
    else if (this.stopped) state = Control.STOP;
    else if (this.paused) state = Control.PAUSE;
    Atomics.store(this.word, 0, state);
    Atomics.notify(this.word, 0);
  }

  /** Pass a job's cancel and pause on to the workers until `work` settles. */
  async follow<T>(hooks: JobHooks, work: Promise<T>): Promise<T> {
    const onAbort = (): void => this.cancel();
    hooks.signal.addEventListener('abort', onAbort, { once: true });
    if (hooks.signal.aborted) this.cancel();
    const unsubscribe = hooks.onPauseChange((paused) => {
      this.paused = paused;
      this.update();
    });
    try {
      return await work;
    } finally {
      unsubscribe();
      hooks.signal.removeEventListener('abort', onAbort);
    }
  }
}
