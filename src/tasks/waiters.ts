import { VigilError } from '../core/errors';

/** Pending `Wait` calls one bus connection may have (the system bus allows 128 replies). */
export const MAX_WAITS_PER_CONNECTION = 128;
/** Pending `Wait` calls of one UID over all its connections. */
export const MAX_WAITS_PER_UID = 4096;

export interface WaitTicket {
  /** Aborted when the waiting client leaves: the wait ends and nothing is kept for it. */
  readonly signal: AbortSignal;
  /** The wait is over (answered or dropped). */
  release(): void;
}

/**
 * Who is waiting on tasks: pending waits per client (a bus connection's unique name) and per
 * UID, each capped, so waiting costs are bounded and die with the client that asked.
 */
export class WaitRegistry {
  private readonly byClient = new Map<string, Set<AbortController>>();
  private readonly byUid = new Map<number, number>();
  private count = 0;

  constructor(
    private readonly perClient = MAX_WAITS_PER_CONNECTION,
    private readonly perUid = MAX_WAITS_PER_UID,
  ) {}

  /** Pending waits in all. */
  get size(): number {
    return this.count;
  }

  /** Start a wait of `client` (running as `uid`), or LimitExceeded when over a cap. */
  enter(client: string, uid: number): WaitTicket {
    const mine = this.byClient.get(client);
    if ((mine?.size ?? 0) >= this.perClient) {
      throw new VigilError(
        'LimitExceeded',
        `this connection already waits on ${this.perClient} tasks (the limit)`,
      );
    }
    const ofUid = this.byUid.get(uid) ?? 0;
    if (ofUid >= this.perUid) {
      throw new VigilError(
        'LimitExceeded',
        `uid ${uid} already waits on ${this.perUid} tasks (the limit)`,
      );
    }
    const controller = new AbortController();
    const set = mine ?? new Set<AbortController>();
    if (!mine) this.byClient.set(client, set);
    set.add(controller);
    this.byUid.set(uid, ofUid + 1);
    this.count++;
    let released = false;
    return {
      signal: controller.signal,
      release: () => {
        if (released) return;
        released = true;
        this.count--;
        set.delete(controller);
        if (set.size === 0 && this.byClient.get(client) === set) this.byClient.delete(client);
        const left = (this.byUid.get(uid) ?? 1) - 1;
        if (left > 0) this.byUid.set(uid, left);
        else this.byUid.delete(uid);
      },
    };
  }

  /** `client` left the bus: each of its waits ends (its tasks go on). */
  drop(client: string): void {
    const set = this.byClient.get(client);
    if (!set) return;
    this.byClient.delete(client);
    const reason = new VigilError('Failed', 'the waiting client left the bus');
    for (const controller of [...set]) controller.abort(reason);
  }
}
