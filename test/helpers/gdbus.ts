import { spawnSync } from 'node:child_process';

/**
 * `gdbus call` on vigil, optionally as another user through `setpriv` (identity is setpriv's
 * options, e.g. ['--reuid=65534', '--regid=65534', '--clear-groups']; empty runs as ourselves).
 * gdbus is a client nobody here wrote, so what it sees is what a third party sees.
 */

const NAME = 'org.vigil.Vigil1';

export interface GdbusReply {
  ok: boolean;
  /** gdbus's text form of the reply, trimmed. */
  out: string;
  /** The D-Bus error name, when the call failed with one. */
  error: string | undefined;
  stderr: string;
}

/** Run `command` as the given identity, with a HOME nobody can read and no session bus. */
export function runAs(
  identity: readonly string[],
  command: string,
  args: readonly string[],
): GdbusReply {
  const argv =
    identity.length > 0 ? ['setpriv', ...identity, command, ...args] : [command, ...args];
  const result = spawnSync(argv[0], argv.slice(1), {
    encoding: 'utf8',
    timeout: 30_000,
    // A HOME the unprivileged clients can neither read nor write: nothing is picked up from root's.
    env: { ...process.env, HOME: '/nonexistent', DBUS_SESSION_BUS_ADDRESS: '' },
  });
  const error = /(?:GDBus\.Error:|^Error )([\w.]+)/m.exec(result.stderr)?.[1];
  return { ok: result.status === 0, out: result.stdout.trim(), error, stderr: result.stderr };
}

/** `gdbus call --address ADDRESS --dest org.vigil.Vigil1 --object-path PATH --method METHOD ARGS…` */
export function gdbusCallAs(
  address: string,
  identity: readonly string[],
  objectPath: string,
  method: string,
  ...args: string[]
): GdbusReply {
  return runAs(identity, 'gdbus', [
    'call',
    '--address',
    address,
    '--dest',
    NAME,
    '--object-path',
    objectPath,
    '--method',
    method,
    ...args,
  ]);
}

/** The same call as ourselves; throws with gdbus's stderr when it fails, else returns its output. */
export function gdbusCall(
  address: string,
  objectPath: string,
  method: string,
  ...args: string[]
): string {
  const reply = gdbusCallAs(address, [], objectPath, method, ...args);
  if (!reply.ok) throw new Error(`gdbus call ${method} failed: ${reply.stderr.trim()}`);
  return reply.out;
}
