/**
 * The system's user and group database through libc (getgrnam_r, getpwuid_r, getgrouplist),
 * so whatever NSS is configured with counts — /etc/group, LDAP, sssd, systemd-userdb — not
 * just the files a parser of our own would read. Loaded on first use: nothing native is
 * touched by a process that never asks.
 */
import koffi from 'koffi';

interface Libc {
  getgrnam(name: string): { gid: number } | undefined;
  getpwuid(uid: number): { name: string; gid: number } | undefined;
  getgrouplist(user: string, primary: number): number[];
}

/** NSS entries are small; a buffer this size holds any sane one, larger ones are retried. */
const FIRST_BUFFER = 16 * 1024;
const MAX_BUFFER = 1024 * 1024;
const ERANGE = 34;

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  koffi.struct('vigil_group', {
    gr_name: 'char *',
    gr_passwd: 'char *',
    gr_gid: 'uint32_t',
    gr_mem: 'void *',
  });
  koffi.struct('vigil_passwd', {
    pw_name: 'char *',
    pw_passwd: 'char *',
    pw_uid: 'uint32_t',
    pw_gid: 'uint32_t',
    pw_gecos: 'char *',
    pw_dir: 'char *',
    pw_shell: 'char *',
  });
  type Reentrant = (
    key: string | number,
    out: Record<string, unknown>,
    buf: Buffer,
    len: number,
    result: unknown[],
  ) => number;
  const getgrnamR = lib.func(
    'int getgrnam_r(const char *name, _Out_ vigil_group *grp, _Out_ uint8_t *buf, size_t buflen, _Out_ void **result)',
  ) as unknown as Reentrant;
  const getpwuidR = lib.func(
    'int getpwuid_r(uint32_t uid, _Out_ vigil_passwd *pwd, _Out_ uint8_t *buf, size_t buflen, _Out_ void **result)',
  ) as unknown as Reentrant;
  const groupList = lib.func(
    'int getgrouplist(const char *user, uint32_t group, _Out_ uint32_t *groups, _Inout_ int *ngroups)',
  ) as unknown as (user: string, group: number, groups: Uint32Array, n: number[]) => number;

  /** Run a *_r lookup, growing the buffer on ERANGE; undefined when there is no entry. */
  const lookup = (fn: Reentrant, key: string | number): Record<string, unknown> | undefined => {
    for (let size = FIRST_BUFFER; size <= MAX_BUFFER; size *= 4) {
      const out: Record<string, unknown> = {};
      const result: unknown[] = [null];
      const rc = fn(key, out, Buffer.alloc(size), size, result);
      if (rc === ERANGE) continue;
      return rc === 0 && result[0] !== null ? out : undefined;
    }
    return undefined;
  };

  libc = {
    getgrnam: (name) => {
      const g = lookup(getgrnamR, name);
      return g ? { gid: g.gr_gid as number } : undefined;
    },
    getpwuid: (uid) => {
      const p = lookup(getpwuidR, uid);
      return p ? { name: p.pw_name as string, gid: p.pw_gid as number } : undefined;
    },
    getgrouplist: (user, primary) => {
      let groups = new Uint32Array(64);
      const n = [groups.length];
      // -1 with n updated to the real count means the array was too small: once more.
      if (groupList(user, primary, groups, n) < 0) {
        groups = new Uint32Array(n[0]);
        if (groupList(user, primary, groups, n) < 0) return [primary];
      }
      return [...groups.slice(0, n[0])];
    },
  };
  return libc;
}

/** getgrnam(3): the GID of group `name`, or undefined when the database has no such group. */
export function groupId(name: string): number | undefined {
  return load().getgrnam(name)?.gid;
}

/**
 * Every group of user `uid` (primary and supplementary, getgrouplist(3)); empty when the
 * database does not know the UID.
 */
export function groupsOfUid(uid: number): number[] {
  const user = load().getpwuid(uid);
  return user ? load().getgrouplist(user.name, user.gid) : [];
}
