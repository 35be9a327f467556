import { VigilError } from '../core/errors';
import type { Caller } from './caller';

/** What one peer may ask of the object server at once (README, "Limits"). */
export interface ServerLimits {
  /** Calls one connection may have admitted and not yet answered (Task.Wait included). */
  readonly maxInFlightPerConnection: number;
  /** Heavy calls (rows marked `heavy`, GetManagedObjects) running at once per UID; root exempt. */
  readonly maxHeavyPerUid: number;
  /** The largest message the bus passes on: a reply or signal above it is never sent. */
  readonly maxMessageBytes: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxInFlightPerConnection: 256,
  maxHeavyPerUid: 4,
  // dbus-daemon's default max_message_size (the system bus's; session buses allow more).
  maxMessageBytes: 32 * 1024 * 1024,
};

/**
 * Counts by key. A key whose count drops to zero stays (a connection that calls again soon
 * costs no map churn) until `forget` drops it, when the peer leaves the bus.
 */
class Counter<K> {
  private readonly counts = new Map<K, number>();
  /** Forgotten while counted: dropped when their count reaches zero. */
  private readonly leaving = new Set<K>();

  get(key: K): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: K): void {
    this.counts.set(key, this.get(key) + 1);
  }

  remove(key: K): void {
    const n = this.get(key) - 1;
    if (n > 0) {
      this.counts.set(key, n);
    } else if (this.leaving.delete(key)) {
      this.counts.delete(key);
    } else {
      this.counts.set(key, 0);
    }
  }

  forget(key: K): void {
    if (this.get(key) === 0) this.counts.delete(key);
    else this.leaving.add(key);
  }

  /** Keys with a count above zero. */
  get busy(): number {
    let n = 0;
    for (const c of this.counts.values()) if (c > 0) n++;
    return n;
  }
}

/** Enforces ServerLimits: the per-connection count from the header, the per-UID one after. */
export class CallLimits {
  private readonly inFlight = new Counter<string>();
  private readonly heavy = new Counter<number>();

  constructor(
    readonly limits: ServerLimits,
    private readonly ownUid: number = process.getuid?.() ?? 0,
  ) {}

  /** Admit one more call from `sender`, or say why not. */
  admitCall(sender: string): string | undefined {
    if (this.inFlight.get(sender) >= this.limits.maxInFlightPerConnection) {
      return (
        `this connection already has ${this.limits.maxInFlightPerConnection} calls in flight; ` +
        'wait for their replies'
      );
    }
    this.inFlight.add(sender);
    return undefined;
  }

  callDone(sender: string): void {
    this.inFlight.remove(sender);
  }

  /** The peer left the bus: nothing of it is kept (its last calls may still be answered). */
  forget(sender: string): void {
    this.inFlight.forget(sender);
  }

  /**
   * Take a heavy-call slot for the caller's UID (LimitExceeded when they are all taken);
   * resolves with a function that gives it back.
   */
  async takeHeavySlot(caller: Caller, what: string): Promise<() => void> {
    const uid = await caller.uid();
    if (uid === 0 || uid === this.ownUid) return () => undefined;
    if (this.heavy.get(uid) >= this.limits.maxHeavyPerUid) {
      throw new VigilError(
        'LimitExceeded',
        `uid ${uid} already has ${this.limits.maxHeavyPerUid} costly calls running; ` +
          `try ${what} again when one has finished`,
      );
    }
    this.heavy.add(uid);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.heavy.remove(uid);
      this.heavy.forget(uid);
    };
  }

  /** Connections with calls in flight (for tests and diagnostics). */
  get busyConnections(): number {
    return this.inFlight.busy;
  }
}
