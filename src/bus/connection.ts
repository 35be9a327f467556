import * as dbus from '@particle/dbus-next';
import { Message, type MessageBus } from '@particle/dbus-next';
import { messageOf } from '../core/errors';

export type BusTarget =
  { kind: 'session' } | { kind: 'system' } | { kind: 'address'; address: string };

export class BusUnavailableError extends Error {}
export class NameTakenError extends Error {}

/** Describe a bus target for messages ("the system bus", "bus unix:path=..."). */
export function describeBus(target: BusTarget): string {
  if (target.kind === 'address') return `the bus at ${target.address}`;
  return `the ${target.kind} bus`;
}

/**
 * Connect and wait for the Hello reply, so "no bus reachable" is reported at once and clearly
 * instead of surfacing later as an unhandled socket error.
 */
export async function connectBus(target: BusTarget, timeoutMs = 5000): Promise<MessageBus> {
  if (target.kind === 'session' && !process.env.DBUS_SESSION_BUS_ADDRESS) {
    throw new BusUnavailableError('no session bus: DBUS_SESSION_BUS_ADDRESS is not set');
  }
  let bus: MessageBus;
  try {
    bus =
      target.kind === 'system'
        ? dbus.systemBus()
        : target.kind === 'session'
          ? dbus.sessionBus()
          : dbus.sessionBus({ busAddress: target.address });
  } catch (e) {
    throw new BusUnavailableError(`cannot connect to ${describeBus(target)}: ${messageOf(e)}`);
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new BusUnavailableError(`${describeBus(target)} did not answer`)),
      timeoutMs,
    );
    bus.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    bus.once('error', (e: unknown) => {
      clearTimeout(timer);
      reject(new BusUnavailableError(`cannot connect to ${describeBus(target)}: ${messageOf(e)}`));
    });
  });
  return bus;
}

/** Call `onLost` once if the connection to the bus daemon ends or fails. */
export function watchConnection(bus: MessageBus, onLost: (reason: string) => void): void {
  let lost = false;
  const report = (reason: string): void => {
    if (lost) return;
    lost = true;
    onLost(reason);
  };
  const conn = (
    bus as unknown as { _connection: NodeJS.EventEmitter & { stream: NodeJS.EventEmitter } }
  )._connection;
  conn.on('end', () => report('the bus closed the connection'));
  conn.stream.on('close', () => report('the bus connection closed'));
  bus.on('error', (e: unknown) => report(`bus connection error: ${messageOf(e)}`));
}

const DBUS_NAME_FLAG_DO_NOT_QUEUE = 4;
const PRIMARY_OWNER = 1;

/** Claim a well-known name without queueing behind another owner. */
export async function claimName(bus: MessageBus, name: string): Promise<void> {
  const reply = await bus.requestName(name, DBUS_NAME_FLAG_DO_NOT_QUEUE);
  if (reply !== PRIMARY_OWNER) throw new NameTakenError(`${name} is already owned`);
}

/** Ask the bus daemon to route signals matching `rule` (a D-Bus match rule) to this connection. */
export async function addMatch(bus: MessageBus, rule: string): Promise<void> {
  await bus.call(
    new Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: [rule],
    }),
  );
}

/** Subscribe to NameOwnerChanged so departed peers can be forgotten. */
export async function onPeerGone(bus: MessageBus, handler: (name: string) => void): Promise<void> {
  await addMatch(bus, "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'");
  bus.on('message', (msg: Message) => {
    if (msg.member === 'NameOwnerChanged' && msg.sender === 'org.freedesktop.DBus') {
      const [name, , newOwner] = msg.body as string[];
      if (name.startsWith(':') && newOwner === '') handler(name);
    }
  });
}
