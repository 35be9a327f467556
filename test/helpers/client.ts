import * as dbus from '@particle/dbus-next';
import { Message, type MessageBus, Variant } from '@particle/dbus-next';
import { addMatch } from '../../src/bus/connection';

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
  private constructor(readonly bus: MessageBus) {}

  static async connect(address: string): Promise<TestClient> {
    const bus = dbus.sessionBus({ busAddress: address });
    await new Promise<void>((resolve, reject) => {
      bus.once('connect', () => resolve());
      bus.once('error', reject);
    });
    return new TestClient(bus);
  }

  get uniqueName(): string {
    return (this.bus as unknown as { name: string | null }).name ?? '';
  }

  async call(
    path: string,
    iface: string,
    member: string,
    signature = '',
    body: unknown[] = [],
  ): Promise<unknown[]> {
    const reply = await this.bus.call(
      new Message({ destination: NAME, path, interface: iface, member, signature, body }),
    );
    return (reply?.body ?? []) as unknown[];
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
      const err = e as { type?: string; text?: string; message?: string };
      return { type: err.type ?? 'unknown', text: err.text ?? err.message ?? '' };
    }
    throw new Error(`${iface}.${member} succeeded but an error was expected`);
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

  /** Subscribe to signals matching `rule` fields; returns the collected messages. */
  async subscribe(rule: { path?: string; iface?: string; member?: string }): Promise<SignalLog> {
    const parts = ["type='signal'", `sender='${NAME}'`];
    if (rule.path) parts.push(`path='${rule.path}'`);
    if (rule.iface) parts.push(`interface='${rule.iface}'`);
    if (rule.member) parts.push(`member='${rule.member}'`);
    await addMatch(this.bus, parts.join(','));
    const log = new SignalLog();
    this.bus.on('message', (m: Message) => {
      if (m.type !== dbus.MessageType.SIGNAL) return;
      if (rule.path && m.path !== rule.path) return;
      if (rule.iface && m.interface !== rule.iface) return;
      if (rule.member && m.member !== rule.member) return;
      log.add(m);
    });
    return log;
  }

  close(): void {
    this.bus.disconnect();
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
