import { VigilError } from '../core/errors';
import { groupId, groupsOfUid } from '../core/nss';
import { callBusDaemon } from './connection';
import type { BusConnection } from './wire/connection';
import { Variant } from './wire/variant';

/** Who made a call, from the bus daemon's own record of the connection (never from the caller). */
export interface Caller {
  readonly sender: string;
  uid(): Promise<number>;
  /** Root, the daemon's own user, or a member of the `vigil` group. */
  privileged(): Promise<boolean>;
}

interface Credentials {
  uid: number;
  gids: readonly number[] | undefined;
}

export const PRIVILEGED_GROUP = 'vigil';

/** Resolves and caches the credentials of bus peers; unique names are never reused. */
export class CallerRegistry {
  private readonly cache = new Map<string, Promise<Credentials>>();
  private readonly privilegedGid: number | undefined;

  constructor(
    private readonly bus: BusConnection,
    private readonly ownUid: number = process.getuid?.() ?? 0,
  ) {
    this.privilegedGid = groupId(PRIVILEGED_GROUP);
  }

  /** Forget a peer when it leaves the bus (NameOwnerChanged with an empty new owner). */
  forget(uniqueName: string): void {
    this.cache.delete(uniqueName);
  }

  forSender(sender: string): Caller {
    const credentials = (): Promise<Credentials> => {
      let entry = this.cache.get(sender);
      if (!entry) {
        entry = this.lookup(sender);
        entry.catch(() => this.cache.delete(sender));
        this.cache.set(sender, entry);
      }
      return entry;
    };
    return {
      sender,
      uid: async () => (await credentials()).uid,
      privileged: async () => this.isPrivileged(await credentials()),
    };
  }

  private isPrivileged(creds: Credentials): boolean {
    if (creds.uid === 0 || creds.uid === this.ownUid) return true;
    if (this.privilegedGid === undefined) return false;
    // An old bus daemon reports no supplementary groups; ask the group database instead.
    const gids = creds.gids ?? groupsOfUid(creds.uid);
    return gids.includes(this.privilegedGid);
  }
  private async lookup(sender: string): Promise<Credentials> {
    const reply = await callBusDaemon(this.bus, 'GetConnectionCredentials', 's', [sender]);
    const dict = (reply.body[0] ?? {}) as Record<string, unknown>;
    const uid = variantValue(dict.UnixUserID);
    if (typeof uid !== 'number') {
      throw new VigilError('AccessDenied', 'caller has no Unix identity');
    }
    const gids = variantValue(dict.UnixGroupIDs);
    return { uid, gids: Array.isArray(gids) ? (gids as number[]) : undefined };
  }
}

function variantValue(v: unknown): unknown {
  return v instanceof Variant ? v.value : undefined;
}
