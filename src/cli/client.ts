import {
  addMatch,
  type BusConnection,
  BusUnavailableError,
  connectBus,
  describeBus,
  NameOwnerTracker,
  removeMatch,
  type BusTarget,
} from '../bus/connection';
import { DBusError } from '../bus/wire/connection';
import { MarshalError } from '../bus/wire/marshal';
import { SIGNAL } from '../bus/wire/message';
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
export class DBusCallError extends DBusError {
  constructor(errorName: string, text: string) {
    super(errorName, text);
    this.name = 'DBusCallError';
  }

  get errorName(): string {
    return this.type;
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
 *
 * Signals are believed only from vigil: the client follows the unique name that owns
 * org.vigil.Vigil1 (GetNameOwner, then NameOwnerChanged, which only the bus daemon can send)
 * and drops, unread, every signal whose sender is another connection, including one-to-one
 * signals a local user sends straight to us to forge a result.
 */
export class VigilClient {
  private readonly vigil: NameOwnerTracker;

  private constructor(
    readonly bus: BusConnection,
    readonly target: BusTarget,
  ) {
    this.vigil = new NameOwnerTracker(bus, BUS_NAME);
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

  /** The unique name vigil has on the bus now ('' when it is not running). */
  get vigilOwner(): string {
    return this.vigil.owner;
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
    try {
      const reply = await this.bus.call(
        { destination, path, interface: iface, member, signature, body },
        { timeoutMs: options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS },
      );
      return reply.body;
    } catch (e) {
      throw asCallError(e);
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
    await this.trackVigil();
    // The bus routes by the well-known name to whoever owns it now; the check below is ours.
    const rule = `type='signal',sender='${BUS_NAME}',path_namespace='${pathNamespace}'`;
    await this.busCall(addMatch, rule);
    const inNamespace = (p: string | undefined): boolean =>
      p === pathNamespace || (p !== undefined && p.startsWith(pathNamespace + '/'));
    const stop = this.bus.addSignalListener({
      accepts: (h) => h.type === SIGNAL && this.vigil.isFrom(h) && inNamespace(h.path),
      handle: (m) =>
        listener({
          path: m.path ?? '',
          iface: m.interface ?? '',
          member: m.member ?? '',
          body: m.body,
        }),
    });
    return async () => {
      stop();
      await this.busCall(removeMatch, rule).catch(() => undefined);
    };
  }

  /** Be told when vigil's name gains or loses its owner (daemon started or stopped). */
  async watchOwner(listener: (owner: string) => void): Promise<void> {
    await this.trackVigil();
    this.vigil.onChange(listener);
  }

  /** Called once if the bus connection ends. */
  onLost(handler: (reason: string) => void): void {
    this.bus.onClose(handler);
  }

  close(): void {
    this.bus.close();
  }

  private async trackVigil(): Promise<void> {
    try {
      await this.vigil.start();
    } catch (e) {
      throw asCallError(e);
    }
  }

  private async busCall<T>(
    f: (bus: BusConnection, arg: string) => Promise<T>,
    arg = '',
  ): Promise<T> {
    try {
      return await f(this.bus, arg);
    } catch (e) {
      throw asCallError(e);
    }
  }
}

/** Whatever a call threw, as a DBusCallError. */
export function asCallError(e: unknown): DBusCallError {
  if (e instanceof DBusCallError) return e;
  if (e instanceof DBusError) return new DBusCallError(e.type, e.text);
  // The wire layer checks names, paths and values before sending; say so the way the bus would.
  if (e instanceof MarshalError) {
    return new DBusCallError('org.freedesktop.DBus.Error.InvalidArgs', e.message);
  }
  return new DBusCallError('org.freedesktop.DBus.Error.Failed', messageOf(e));
}
