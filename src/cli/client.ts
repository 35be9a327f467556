import * as dbus from '@particle/dbus-next';
import { Message, type MessageBus } from '@particle/dbus-next';
import {
  BusUnavailableError,
  connectBus,
  describeBus,
  watchConnection,
  type BusTarget,
} from '../bus/connection';
import { BUS_NAME, IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import { messageOf } from '../core/errors';
import { unwrapDict, type BusValue } from './values';

export { BUS_NAME, IFACE_PREFIX, ROOT_PATH, BusUnavailableError, type BusTarget };

export const TASKS_PATH = `${ROOT_PATH}/Tasks`;
export const TASK_IFACE = `${IFACE_PREFIX}Task`;
export const TASK_MANAGER_IFACE = `${IFACE_PREFIX}TaskManager`;
export const DAEMON_IFACE = `${IFACE_PREFIX}Daemon`;
export const RANDOM_DATA_PATH = `${ROOT_PATH}/RandomData`;
export const RANDOM_DATA_IFACE = `${IFACE_PREFIX}RandomData`;
export const PROPERTIES_IFACE = 'org.freedesktop.DBus.Properties';
export const OBJECT_MANAGER_IFACE = 'org.freedesktop.DBus.ObjectManager';
export const VIGIL_ERROR_PREFIX = `${IFACE_PREFIX}Error.`;

/** libdbus's default reply timeout: a call that hangs longer than this is reported. */
export const DEFAULT_CALL_TIMEOUT_MS = 25000;

/**
 * A call that failed: a D-Bus error reply from the daemon or the bus (`name` is the D-Bus
 * error name), or a local failure given a D-Bus-style name so it prints the same way.
 */
export class DBusCallError extends Error {
  constructor(
    readonly errorName: string,
    readonly text: string,
  ) {
    super(`${errorName}: ${text}`);
    this.name = 'DBusCallError';
  }
}

/** Errors that mean "vigil is not there" rather than "vigil said no". */
const UNREACHABLE_ERRORS = new Set([
  'org.freedesktop.DBus.Error.ServiceUnknown',
  'org.freedesktop.DBus.Error.NameHasNoOwner',
  'org.freedesktop.DBus.Error.NoReply',
  'org.freedesktop.DBus.Error.Disconnected',
  'org.freedesktop.DBus.Error.NoServer',
  'org.freedesktop.DBus.Error.Timeout',
]);

export function isUnreachable(e: unknown): boolean {
  return e instanceof DBusCallError && UNREACHABLE_ERRORS.has(e.errorName);
}

/** The global bus options of the command line. */
export interface BusChoice {
  session?: boolean;
  system?: boolean;
  bus?: string;
}

/**
 * Which bus to use: an explicit option wins; with none, the session bus when
 * DBUS_SESSION_BUS_ADDRESS is set, else VIGIL_BUS_ADDRESS (printed by the quick-start script
 * when it had to start a private bus), else the session bus (which then reports clearly that
 * there is none).
 */
export function chooseBus(choice: BusChoice, env: NodeJS.ProcessEnv = process.env): BusTarget {
  if (choice.system) return { kind: 'system' };
  if (choice.bus !== undefined) return { kind: 'address', address: choice.bus };
  if (choice.session) return { kind: 'session' };
  if (!env.DBUS_SESSION_BUS_ADDRESS && env.VIGIL_BUS_ADDRESS) {
    return { kind: 'address', address: env.VIGIL_BUS_ADDRESS };
  }
  return { kind: 'session' };
}

export interface CallOptions {
  /** Milliseconds before the call is abandoned; 0 waits forever (Task.Wait). */
  timeoutMs?: number;
}

/** A signal as handed to listeners. */
export interface BusSignal {
  path: string;
  iface: string;
  member: string;
  body: unknown[];
}

/**
 * vigilctl's connection to vigil: method calls with explicit signatures, property reads and
 * signal subscriptions. Every failure surfaces as a DBusCallError (or BusUnavailableError
 * when the bus itself cannot be reached).
 */
export class VigilClient {
  private readonly listeners = new Set<(s: BusSignal) => void>();
  private lostHandlers: ((reason: string) => void)[] = [];
  private lostReason: string | undefined;

  private constructor(
    readonly bus: MessageBus,
    readonly target: BusTarget,
  ) {
    bus.on('message', (m: Message) => {
      if (m.type !== dbus.MessageType.SIGNAL) return;
      const s: BusSignal = {
        path: m.path ?? '',
        iface: m.interface ?? '',
        member: m.member ?? '',
        body: (m.body ?? []) as unknown[],
      };
      for (const l of [...this.listeners]) l(s);
    });
    watchConnection(bus, (reason) => {
      this.lostReason = reason;
      for (const h of this.lostHandlers) h(reason);
    });
  }

  static async connect(target: BusTarget, timeoutMs = 5000): Promise<VigilClient> {
    if (target.kind === 'session' && !process.env.DBUS_SESSION_BUS_ADDRESS) {
      throw new BusUnavailableError(
        'no session bus: neither DBUS_SESSION_BUS_ADDRESS nor VIGIL_BUS_ADDRESS is set ' +
          '(use --system or --bus ADDRESS)',
      );
    }
    return new VigilClient(await connectBus(target, timeoutMs), target);
  }

  describe(): string {
    return describeBus(this.target);
  }

  /** Call `member` on vigil and resolve with the reply body. */
  async call(
    path: string,
    iface: string,
    member: string,
    signature = '',
    body: unknown[] = [],
    options: CallOptions = {},
  ): Promise<unknown[]> {
    return this.callOn(BUS_NAME, path, iface, member, signature, body, options);
  }

  /** Call any destination (the bus daemon itself, for instance). */
  async callOn(
    destination: string,
    path: string,
    iface: string,
    member: string,
    signature = '',
    body: unknown[] = [],
    options: CallOptions = {},
  ): Promise<unknown[]> {
    if (this.lostReason)
      throw new DBusCallError('org.freedesktop.DBus.Error.Disconnected', this.lostReason);
    let message: Message;
    try {
      message = new Message({ destination, path, interface: iface, member, signature, body });
    } catch (e) {
      // dbus-next validates paths and names locally; say so the way the bus would.
      throw new DBusCallError('org.freedesktop.DBus.Error.InvalidArgs', messageOf(e));
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    let onLost: ((reason: string) => void) | undefined;
    const reply = this.bus.call(message).then((r) => (r?.body ?? []) as unknown[]);
    // The race below may settle first (timeout, lost bus); a late rejection is not an error.
    reply.catch(() => undefined);
    const pending: Promise<unknown[]>[] = [
      reply,
      new Promise<never>((_, reject) => {
        onLost = (reason) =>
          reject(new DBusCallError('org.freedesktop.DBus.Error.Disconnected', reason));
        this.lostHandlers.push(onLost);
      }),
    ];
    if (timeoutMs > 0) {
      pending.push(
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new DBusCallError(
                  'org.freedesktop.DBus.Error.NoReply',
                  `${iface}.${member} did not answer within ${timeoutMs / 1000} s`,
                ),
              ),
            timeoutMs,
          );
        }),
      );
    }
    try {
      return await Promise.race(pending);
    } catch (e) {
      throw asCallError(e);
    } finally {
      if (timer) clearTimeout(timer);
      this.lostHandlers = this.lostHandlers.filter((h) => h !== onLost);
    }
  }

  async getAll(path: string, iface: string): Promise<Record<string, BusValue>> {
    const [all] = await this.call(path, PROPERTIES_IFACE, 'GetAll', 's', [iface]);
    return unwrapDict(all);
  }

  async get(path: string, iface: string, prop: string): Promise<BusValue> {
    const [v] = await this.call(path, PROPERTIES_IFACE, 'Get', 'ss', [iface, prop]);
    return unwrapDict({ v }).v;
  }

  /**
   * Receive vigil's signals whose path is `pathNamespace` or below it (all of vigil by default).
   * The match is added before this resolves, so nothing emitted afterwards is missed.
   * Returns a function that unsubscribes.
   */
  async subscribe(
    listener: (s: BusSignal) => void,
    pathNamespace: string = ROOT_PATH,
  ): Promise<() => Promise<void>> {
    const rule = `type='signal',sender='${BUS_NAME}',path_namespace='${pathNamespace}'`;
    await this.busDaemon('AddMatch', rule);
    const filtered = (s: BusSignal): void => {
      if (s.path === pathNamespace || s.path.startsWith(pathNamespace + '/')) listener(s);
    };
    this.listeners.add(filtered);
    return async () => {
      this.listeners.delete(filtered);
      await this.busDaemon('RemoveMatch', rule).catch(() => undefined);
    };
  }

  /** Be told when vigil's name gains or loses its owner (daemon started or stopped). */
  async watchOwner(listener: (owner: string) => void): Promise<void> {
    const rule =
      `type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',` +
      `member='NameOwnerChanged',arg0='${BUS_NAME}'`;
    await this.busDaemon('AddMatch', rule);
    this.bus.on('message', (m: Message) => {
      if (m.type !== dbus.MessageType.SIGNAL || m.member !== 'NameOwnerChanged') return;
      if (m.sender !== 'org.freedesktop.DBus') return;
      const [name, , owner] = (m.body ?? []) as string[];
      if (name === BUS_NAME) listener(owner);
    });
  }

  /** Called once if the bus connection ends. */
  onLost(handler: (reason: string) => void): void {
    if (this.lostReason) handler(this.lostReason);
    else this.lostHandlers.push(handler);
  }

  close(): void {
    this.bus.disconnect();
  }

  private async busDaemon(member: string, arg: string): Promise<void> {
    await this.callOn(
      'org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus',
      member,
      's',
      [arg],
    );
  }
}

/** Whatever a call threw, as a DBusCallError. */
export function asCallError(e: unknown): DBusCallError {
  if (e instanceof DBusCallError) return e;
  const err = e as { type?: unknown; text?: unknown };
  if (e instanceof dbus.DBusError || (typeof err?.type === 'string' && err.type.includes('.'))) {
    return new DBusCallError(String(err.type), String(err.text ?? messageOf(e)));
  }
  return new DBusCallError('org.freedesktop.DBus.Error.Failed', messageOf(e));
}
