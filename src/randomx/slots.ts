/** A FIFO counting semaphore over the hashing workers, so long jobs never starve quick Hash. */
import { cancelled, once } from './control';

export class Slots {
  private free: number;
  private readonly waiters: Array<{ n: number; grant: () => void }> = [];

  constructor(size: number) {
    this.free = size;
  }

  acquire(n: number, signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(cancelled());
    if (this.waiters.length === 0 && this.free >= n) {
      this.free -= n;
      return Promise.resolve(once(() => this.release(n)));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        n,
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(once(() => this.release(n)));
        },
      };
      const onAbort = (): void => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        this.drain();
        reject(cancelled());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private release(n: number): void {
    this.free += n;
    this.drain();
  }

  private drain(): void {
    while (this.waiters.length > 0 && this.free >= this.waiters[0].n) {
      const waiter = this.waiters.shift();
      if (!waiter) break;
      this.free -= waiter.n;
      waiter.grant();
    }
  }
}
