import fs from 'node:fs';
import { Message, type MessageBus, Variant } from '@particle/dbus-next';
import { VigilError } from '../core/errors';
import { log } from '../core/log';

/** Who made a call, from the bus daemon's own record of the connection (never from the caller). */
export interface Caller {
  readonly sender: string;
  uid(): Promise<number>;
  /**
   * Resolve with the caller's UID if it may use privileged members (root, the daemon's own
   * user, or a member of the `vigil` group); otherwise AccessDenied, logged with the UID.
   */
  requirePrivileged(action: string): Promise<number>;
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
    private readonly bus: MessageBus,
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
      requirePrivileged: async (action: string) => {
        const creds = await credentials();
        if (this.isPrivileged(creds)) return creds.uid;
        log.warning(`access denied: uid ${creds.uid} (${sender}) may not ${action}`);
        throw new VigilError(
          'AccessDenied',
          `${action} needs root or membership of the ${PRIVILEGED_GROUP} group`,
        );
      },
    };
  }

  private isPrivileged(creds: Credentials): boolean {
    if (creds.uid === 0 || creds.uid === this.ownUid) return true;
    if (this.privilegedGid === undefined) return false;
    const gids = creds.gids ?? groupsOfUid(creds.uid);
    return gids.includes(this.privilegedGid);
  }

  private async lookup(sender: string): Promise<Credentials> {
    const reply = await this.bus.call(
      new Message({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'GetConnectionCredentials',
        signature: 's',
        body: [sender],
      }),
    );
    const dict = (reply?.body[0] ?? {}) as Record<string, Variant>;
    const uid = dict.UnixUserID?.value as number | undefined;
    if (uid === undefined) throw new VigilError('AccessDenied', 'caller has no Unix identity');
    const gids = dict.UnixGroupIDs?.value as number[] | undefined;
    return { uid, gids };
  }
}

function readLines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    return [];
  }
}

/** getgrnam() without a native call: the group database as /etc/group has it. */
export function groupId(name: string): number | undefined {
  for (const line of readLines('/etc/group')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined) return Number(gid);
  }
  return undefined;
}

/** Fallback when the bus does not report supplementary groups: primary plus /etc/group. */
function groupsOfUid(uid: number): number[] {
  const entry = readLines('/etc/passwd')
    .map((l) => l.split(':'))
    .find((f) => Number(f[2]) === uid);
  if (!entry) return [];
  const [user, , , primary] = entry;
  const gids = [Number(primary)];
  for (const line of readLines('/etc/group')) {
    const [, , gid, members] = line.split(':');
    if (members?.split(',').includes(user)) gids.push(Number(gid));
  }
  return gids;
}
