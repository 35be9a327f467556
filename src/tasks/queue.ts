/** What the queue needs to know of a task to place it. */
export interface Queueable {
  readonly ownerUid: number;
  readonly privileged: boolean;
}

/**
 * One tier of the queue: a FIFO per UID, the UIDs in a ring. Serving a UID moves it to the
 * end of the ring (a Map keeps insertion order), so each UID with work waiting gets a turn
 * before any gets a second: round-robin, not first come first served.
 */
class Tier<T extends Queueable> {
  private readonly byUid = new Map<number, T[]>();
  size = 0;

  push(task: T): void {
    const list = this.byUid.get(task.ownerUid);
    if (list) list.push(task);
    else this.byUid.set(task.ownerUid, [task]);
    this.size++;
  }

  remove(task: T): boolean {
    const list = this.byUid.get(task.ownerUid);
    const i = list ? list.indexOf(task) : -1;
    if (!list || i < 0) return false;
    list.splice(i, 1);
    if (list.length === 0) this.byUid.delete(task.ownerUid);
    this.size--;
    return true;
  }

  take(eligible: (task: T) => boolean): T | undefined {
    for (const [uid, list] of this.byUid) {
      if (!eligible(list[0])) continue;
      const task = list.shift() as T;
      this.byUid.delete(uid);
      if (list.length > 0) this.byUid.set(uid, list);
      this.size--;
      return task;
    }
    return undefined;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (const list of this.byUid.values()) yield* list;
  }
}

/**
 * The tasks waiting for a run slot. Privileged owners' tasks (root, the `vigil` group) come
 * first, so no unprivileged queue can hold them back; within each tier UIDs take turns.
 */
export class FairQueue<T extends Queueable> {
  private readonly privileged = new Tier<T>();
  private readonly others = new Tier<T>();

  get size(): number {
    return this.privileged.size + this.others.size;
  }

  push(task: T): void {
    this.tier(task).push(task);
  }

  remove(task: T): boolean {
    return this.tier(task).remove(task);
  }

  /** The next task to start; `eligible` may hold a task back (its owner's share is used up). */
  take(eligible: (task: T) => boolean = () => true): T | undefined {
    return this.privileged.take(eligible) ?? this.others.take(eligible);
  }

  *[Symbol.iterator](): Iterator<T> {
    yield* this.privileged;
    yield* this.others;
  }

  private tier(task: T): Tier<T> {
    return task.privileged ? this.privileged : this.others;
  }
}
