import { addMatch, BusConnection, callBusDaemon, NameOwnerTracker } from '../../src/bus/connection';
import { DBusError } from '../../src/bus/wire/connection';
import { SIGNAL, type Message } from '../../src/bus/wire/message';
import { Variant } from '../../src/bus/wire/variant';

export type { Message };

export const NAME = 'org.vigil.Vigil1';
export const ROOT = '/org/vigil/Vigil1';
export const IFACE = 'org.vigil.Vigil1.';

/** A D-Bus error reply as the client sees it. */
export interface DBusErrorReply {
  type: string;
  text: string;
}

/** A low-level client: raw calls with explicit signatures, so tests control exactly what is sent. */
export class TestClient {
  private readonly vigil: NameOwnerTracker;

  private constructor(readonly bus: BusConnection) {
    this.vigil = new NameOwnerTracker(bus, NAME);
  }

  static async connect(address: string): Promise<TestClient> {
    return new TestClient(await BusConnection.open(address));
  }

  get uniqueName(): string {
    return this.bus.uniqueName;
  }

  async call(
    path: string,
    iface: string,
    member: string,
    signature = '',
    body: unknown[] = [],
  ): Promise<unknown[]> {
    const reply = await this.bus.call({
      destination: NAME,
      path,
      interface: iface,
      member,
      signature,
      body,
    });
    return reply.body;
  }

  /** The error a call fails with; fails the test if the call succeeds. */
  async callError(
    path: string,
    iface: string,
    member: string,
    signature = '',
    body: unknown[] = [],
  ): Promise<DBusErrorReply> {
    try {
      await this.call(path, iface, member, signature, body);
    } catch (e) {
      if (e instanceof DBusError) return { type: e.type, text: e.text };
      return { type: 'unknown', text: (e as Error).message };
    }
    throw new Error(`${iface}.${member} succeeded but an error was expected`);
  }

  /** Call the bus daemon itself (org.freedesktop.DBus). */
  async busCall(member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
    return (await callBusDaemon(this.bus, member, signature, body)).body;
  }

  async get(path: string, iface: string, prop: string): Promise<unknown> {
    const [v] = await this.call(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [
      iface,
      prop,
    ]);
    return (v as Variant).value;
  }

  async getAll(path: string, iface: string): Promise<Record<string, unknown>> {
    const [all] = await this.call(path, 'org.freedesktop.DBus.Properties', 'GetAll', 's', [iface]);
    return plain(all) as Record<string, unknown>;
  }

  /**
   * Subscribe to vigil's signals matching `rule` fields; returns the collected messages. Only
   * signals whose sender is vigil's current unique owner are kept (as every client should).
   */
  async subscribe(rule: { path?: string; iface?: string; member?: string }): Promise<SignalLog> {
    await this.vigil.start();
    const parts = ["type='signal'", `sender='${NAME}'`];
    if (rule.path) parts.push(`path='${rule.path}'`);
    if (rule.iface) parts.push(`interface='${rule.iface}'`);
    if (rule.member) parts.push(`member='${rule.member}'`);
    await addMatch(this.bus, parts.join(','));
    const log = new SignalLog();
    this.bus.addSignalListener({
      accepts: (h) =>
        h.type === SIGNAL &&
        this.vigil.isFrom(h) &&
        (!rule.path || h.path === rule.path) &&
        (!rule.iface || h.interface === rule.iface) &&
        (!rule.member || h.member === rule.member),
      handle: (m) => log.add(m),
    });
    return log;
  }

  close(): void {
    this.bus.close();
  }
}

export class SignalLog {
  readonly messages: Message[] = [];
  private waiters: { pred: (m: Message) => boolean; resolve: (m: Message) => void }[] = [];

  add(m: Message): void {
    this.messages.push(m);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(m)) return true;
      w.resolve(m);
      return false;
    });
  }

  /** The first message (already received or future) that matches. */
  waitFor(pred: (m: Message) => boolean, timeoutMs = 15000): Promise<Message> {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('signal did not arrive')), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  count(pred: (m: Message) => boolean): number {
    return this.messages.filter(pred).length;
  }
}

/** Strip Variants recursively so results compare as plain values. */
export function plain(v: unknown): unknown {
  if (v instanceof Variant) return plain(v.value);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

export function variant(sig: string, value: unknown): Variant {
  return new Variant(sig, value);
}
