import { messageOf } from '../core/errors';
import { AddressError, DEFAULT_SYSTEM_BUS_ADDRESS } from './wire/address';
import { BUS_DAEMON, BUS_DAEMON_PATH, BusConnection, type ConnectOptions } from './wire/connection';
import { SIGNAL, type Message } from './wire/message';

export { BusConnection };

export type BusTarget =
  { kind: 'session' } | { kind: 'system' } | { kind: 'address'; address: string };

export class BusUnavailableError extends Error {}
/** The address itself is malformed (`--bus garbage`): a one-line message saying what is wrong. */
export class BusAddressError extends BusUnavailableError {}
export class NameTakenError extends Error {}

/** Describe a bus target for messages ("the system bus", "bus unix:path=..."). */
export function describeBus(target: BusTarget): string {
  if (target.kind === 'address') return `the bus at ${target.address}`;
  return `the ${target.kind} bus`;
}

/** The address to connect to, from the target and the environment, as libdbus finds it. */
export function busAddress(target: BusTarget, env: NodeJS.ProcessEnv = process.env): string {
  if (target.kind === 'address') return target.address;
  if (target.kind === 'system') return env.DBUS_SYSTEM_BUS_ADDRESS || DEFAULT_SYSTEM_BUS_ADDRESS;
  const session = env.DBUS_SESSION_BUS_ADDRESS;
  if (!session)
    throw new BusUnavailableError('no session bus: DBUS_SESSION_BUS_ADDRESS is not set');
  return session;
}

/**
 * Connect and wait for the Hello reply, so "no bus reachable" is reported at once and clearly
 * instead of surfacing later as a socket error.
 */
export async function connectBus(
  target: BusTarget,
  timeoutMs = 5000,
  options: ConnectOptions = {},
): Promise<BusConnection> {
  const address = busAddress(target);
  try {
    return await BusConnection.open(address, { ...options, timeoutMs });
  } catch (e) {
    if (e instanceof AddressError) throw new BusAddressError(e.message);
    throw new BusUnavailableError(`cannot connect to ${describeBus(target)}: ${messageOf(e)}`);
  }
}

/** Call `onLost` once if the connection to the bus daemon ends or fails. */
export function watchConnection(bus: BusConnection, onLost: (reason: string) => void): void {
  bus.onClose(onLost);
}

/** Call a method of the bus daemon itself. */
export function callBusDaemon(
  bus: BusConnection,
  member: string,
  signature = '',
  body: unknown[] = [],
): Promise<Message> {
  return bus.call({
    destination: BUS_DAEMON,
    path: BUS_DAEMON_PATH,
    interface: BUS_DAEMON,
    member,
    signature,
    body,
  });
}

const DBUS_NAME_FLAG_DO_NOT_QUEUE = 4;
const PRIMARY_OWNER = 1;

/** Claim a well-known name without queueing behind another owner. */
export async function claimName(bus: BusConnection, name: string): Promise<void> {
  const reply = await callBusDaemon(bus, 'RequestName', 'su', [name, DBUS_NAME_FLAG_DO_NOT_QUEUE]);
  if (reply.body[0] !== PRIMARY_OWNER) throw new NameTakenError(`${name} is already owned`);
}

export async function releaseName(bus: BusConnection, name: string): Promise<void> {
  await callBusDaemon(bus, 'ReleaseName', 's', [name]);
}

/** Ask the bus daemon to route signals matching `rule` (a D-Bus match rule) to this connection. */
export async function addMatch(bus: BusConnection, rule: string): Promise<void> {
  await callBusDaemon(bus, 'AddMatch', 's', [rule]);
}

export async function removeMatch(bus: BusConnection, rule: string): Promise<void> {
  await callBusDaemon(bus, 'RemoveMatch', 's', [rule]);
}

/** The unique name owning `name`, or '' when it has none. */
export async function nameOwner(bus: BusConnection, name: string): Promise<string> {
  try {
    const reply = await callBusDaemon(bus, 'GetNameOwner', 's', [name]);
    return String(reply.body[0]);
  } catch (e) {
    if ((e as { type?: string }).type === 'org.freedesktop.DBus.Error.NameHasNoOwner') return '';
    throw e;
  }
}

/**
 * Follow the owner of `name` from NameOwnerChanged (only the bus daemon can send that: it sets
 * the sender field itself). `onChange` gets the new unique owner, '' when the name is lost.
 */
export async function watchNameOwner(
  bus: BusConnection,
  name: string,
  onChange: (owner: string) => void,
): Promise<void> {
  await addMatch(
    bus,
    `type='signal',sender='${BUS_DAEMON}',interface='${BUS_DAEMON}',` +
      `member='NameOwnerChanged',arg0='${name}'`,
  );
  bus.addSignalListener({
    accepts: (h) => isNameOwnerChanged(h),
    handle: (m) => {
      const [changed, , owner] = m.body;
      if (changed === name && typeof owner === 'string') onChange(owner);
    },
  });
}

/**
 * Follows which unique name owns a well-known name: GetNameOwner once, then NameOwnerChanged
 * (the match is added first, so no change is missed). Clients use it to believe a signal only
 * when its sender, which the bus daemon sets and no peer can forge, is the current owner: a
 * restarted daemon is followed, an impostor's signals (one-to-one ones included) are not.
 */
export class NameOwnerTracker {
  private current = '';
  private started: Promise<void> | undefined;
  private readonly listeners = new Set<(owner: string) => void>();

  constructor(
    private readonly bus: BusConnection,
    readonly name: string,
  ) {}

  /** The owner now ('' when the name has none). */
  get owner(): string {
    return this.current;
  }

  /** Start following (once; later calls wait for the same start). */
  start(): Promise<void> {
    this.started ??= (async () => {
      let changed = false;
      await watchNameOwner(this.bus, this.name, (owner) => {
        changed = true;
        this.current = owner;
        for (const l of [...this.listeners]) l(owner);
      });
      const owner = await nameOwner(this.bus, this.name);
      // A NameOwnerChanged that came in meanwhile is newer than the answer.
      if (!changed) this.current = owner;
    })();
    return this.started;
  }

  onChange(listener: (owner: string) => void): void {
    this.listeners.add(listener);
  }

  /** Whether a message comes from the current owner. */
  isFrom(h: { sender?: string }): boolean {
    return this.current !== '' && h.sender === this.current;
  }
}

function isNameOwnerChanged(h: {
  type: number;
  sender?: string;
  interface?: string;
  member?: string;
  signature: string;
}): boolean {
  return (
    h.type === SIGNAL &&
    h.sender === BUS_DAEMON &&
    h.interface === BUS_DAEMON &&
    h.member === 'NameOwnerChanged' &&
    h.signature === 'sss'
  );
}

/** Subscribe to NameOwnerChanged so departed peers can be forgotten. */
export async function onPeerGone(
  bus: BusConnection,
  handler: (name: string) => void,
): Promise<void> {
  await addMatch(bus, `type='signal',sender='${BUS_DAEMON}',member='NameOwnerChanged'`);
  bus.addSignalListener({
    accepts: (h) => isNameOwnerChanged(h),
    handle: (m) => {
      const [name, , newOwner] = m.body as string[];
      if (name.startsWith(':') && newOwner === '') handler(name);
    },
  });
}
