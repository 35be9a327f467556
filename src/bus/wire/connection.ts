import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { connectAbstract } from './abstract-socket';
import { parseAddress, type SocketTarget } from './address';
import { authenticate } from './auth';
import { MessageFramer } from './framing';
import { MarshalError } from './marshal';
import {
  encodeMessage,
  ERROR,
  MAX_MESSAGE_BYTES,
  METHOD_CALL,
  METHOD_RETURN,
  NO_REPLY_EXPECTED,
  SIGNAL,
  type Message,
  type MessageHeader,
  type OutgoingMessage,
} from './message';
import { DecodeError } from './reader';
import { parseSignature } from './signature';
import { BodyDecoder } from './unmarshal';

/** An error reply (or a local failure named like one): `type` is the D-Bus error name. */
export class DBusError extends Error {
  constructor(
    readonly type: string,
    readonly text: string,
  ) {
    super(`${type}: ${text}`);
    this.name = 'DBusError';
  }
}

/** The bus could not be reached, or refused us. */
export class ConnectError extends Error {}

/** A message bigger than the connection may send (the bus would drop the connection). */
export class MessageTooLargeError extends MarshalError {}

/** The error a method call is refused with, decided from its header alone. */
export interface Refusal {
  readonly errorName: string;
  readonly text: string;
}

/** The arguments of a call cannot be read (answered InvalidArgs). */
export class BodyError extends Error {}

/** A method call whose header was admitted and whose body has arrived, not yet decoded. */
export interface IncomingCall<T> {
  readonly header: MessageHeader;
  /** What `admit` said about the call (the server's route to its handler). */
  readonly token: T;
  /**
   * Decode the arguments now, when they are small enough to decode at once (throws BodyError);
   * undefined when they must be decoded in slices with body().
   */
  bodyNow(): unknown[] | undefined;
  /** Decode the arguments, in slices when they are big; rejects with BodyError. */
  body(): Promise<unknown[]>;
}

/** What serves method calls on a connection (the object server). */
export interface CallHandler<T> {
  /** From a call's header alone: accept it (its body is then read) or refuse it (body unread). */
  admit(h: MessageHeader): { refuse: Refusal } | { accept: T };
  /**
   * A call whose body has arrived. The handler decides when (and whether) to decode it, and
   * replies with `reply`/`replyError`.
   */
  handle(call: IncomingCall<T>): void;
}

/** How the framer hands a message on, decided from its header. */
type Accepted = { kind: 'call'; token: unknown } | { kind: 'other' };
const OTHER: Accepted = { kind: 'other' };

/** Someone who wants some of the signals that reach the connection. */
export interface SignalListener {
  /** From the header alone (sender, path, member): whether to read this signal. */
  accepts(h: MessageHeader): boolean;
  handle(m: Message): void;
}

export interface ConnectOptions {
  /** For connect, authentication and Hello together. */
  timeoutMs?: number;
  /**
   * How many calls may await their replies at once; more wait their turn. Bus daemons cap the
   * replies a connection may await (128 on a system bus) and answer the excess with an error.
   */
  maxPendingCalls?: number;
  /** The largest message this connection sends (the bus drops a connection that sends more). */
  maxMessageBytes?: number;
  /** Byte order of what is sent (tests send big-endian too). */
  littleEndian?: boolean;
  /** An exception while handling a message: the connection goes on; the owner logs it. */
  onInternalError?: (e: unknown, h: MessageHeader) => void;
}

export const BUS_DAEMON = 'org.freedesktop.DBus';
export const BUS_DAEMON_PATH = '/org/freedesktop/DBus';
const DBUS_ERROR = 'org.freedesktop.DBus.Error.';

/** A big body is decoded in slices of this many milliseconds, others served in between. */
const SLICE_MS = 2;
/** Bodies up to this size decode at once (well within a slice). */
const DECODE_AT_ONCE_BYTES = 64 * 1024;

interface PendingCall {
  resolve(m: Message): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * One connection to a bus daemon, on the wire layer of vigil's own: it authenticates, says
 * Hello, numbers and sends messages (checked, never invalid), and reads the stream through a
 * MessageFramer, so that every message's header is looked at before its body is read. Bodies
 * are decoded with validation, big ones in slices; a body that does not decode fails its own
 * message only (a call gets InvalidArgs, a signal is dropped and counted). Nothing a peer sends
 * can throw out of here.
 */
export class BusConnection {
  uniqueName = '';
  readonly stats = { signalsDropped: 0, signalsIgnored: 0, callsRefused: 0, internalErrors: 0 };
  private serial = 0;
  private readonly pending = new Map<number, PendingCall>();
  private readonly waiting: (() => void)[] = [];
  private readonly signalListeners = new Set<SignalListener>();
  private readonly closeListeners = new Set<(reason: string) => void>();
  private callHandler: CallHandler<unknown> | undefined;
  private closedReason: string | undefined;
  /** Replies and signals handed on in the order they arrived, even when one decodes slowly. */
  private readonly ordered: { ready: boolean; deliver: () => void }[] = [];
  private readonly maxPendingCalls: number;
  private maxMessageBytes: number;
  private readonly littleEndian: boolean;

  private constructor(
    private readonly socket: net.Socket,
    private readonly options: ConnectOptions,
  ) {
    this.maxPendingCalls = options.maxPendingCalls ?? 64;
    this.maxMessageBytes = Math.min(
      options.maxMessageBytes ?? MAX_MESSAGE_BYTES,
      MAX_MESSAGE_BYTES,
    );
    this.littleEndian = options.littleEndian ?? true;
  }

  /** Connect to `address` (a D-Bus address string), authenticate and say Hello. */
  static async open(address: string, options: ConnectOptions = {}): Promise<BusConnection> {
    const targets = parseAddress(address);
    const timeoutMs = options.timeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ConnectError(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    let socket: net.Socket | undefined;
    try {
      const errors: string[] = [];
      for (const t of targets) {
        try {
          socket = await Promise.race([connectSocket(t), timeout]);
          break;
        } catch (e) {
          if (e instanceof ConnectError) throw e;
          errors.push((e as Error).message);
        }
      }
      if (!socket) throw new ConnectError(errors.join('; '));
      const { rest } = await Promise.race([authenticate(socket), timeout]).catch((e: Error) => {
        throw new ConnectError(e.message);
      });
      const conn = new BusConnection(socket, options);
      conn.start(rest);
      const hello = await Promise.race([
        conn.call({
          destination: BUS_DAEMON,
          path: BUS_DAEMON_PATH,
          interface: BUS_DAEMON,
          member: 'Hello',
        }),
        timeout,
      ]).catch((e: Error) => {
        conn.close();
        throw new ConnectError(`Hello failed: ${e.message}`);
      });
      conn.uniqueName = String(hello.body[0]);
      return conn;
    } catch (e) {
      socket?.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Send nothing bigger than `bytes` (the bus's own limit, when the owner knows it). */
  limitMessageSize(bytes: number): void {
    this.maxMessageBytes = Math.min(bytes, MAX_MESSAGE_BYTES);
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Serve method calls (one handler per connection: the object server). */
  serve<T>(handler: CallHandler<T>): void {
    this.callHandler = handler as CallHandler<unknown>;
  }

  /** Receive the signals `listener` accepts; returns a function that stops it. */
  addSignalListener(listener: SignalListener): () => void {
    this.signalListeners.add(listener);
    return () => this.signalListeners.delete(listener);
  }

  /** Be told once when the connection ends (whoever ended it). */
  onClose(listener: (reason: string) => void): void {
    if (this.closedReason !== undefined) listener(this.closedReason);
    else this.closeListeners.add(listener);
  }

  /** Send a message; returns its serial. Throws MarshalError before anything invalid is sent. */
  send(m: OutgoingMessage): number {
    if (this.closedReason !== undefined) {
      throw new DBusError(`${DBUS_ERROR}Disconnected`, this.closedReason);
    }
    this.serial = this.serial >= 0xffffffff ? 1 : this.serial + 1;
    const bytes = encodeMessage(m, this.serial, this.littleEndian);
    if (bytes.length > this.maxMessageBytes) {
      throw new MessageTooLargeError(
        `a message of ${bytes.length} bytes exceeds the limit of ${this.maxMessageBytes}`,
      );
    }
    this.socket.write(bytes);
    return this.serial;
  }

  /** Write bytes as they are (the fuzz test's raw client); the caller owns their validity. */
  sendRaw(bytes: Buffer): void {
    if (this.closedReason !== undefined) {
      throw new DBusError(`${DBUS_ERROR}Disconnected`, this.closedReason);
    }
    this.socket.write(bytes);
  }

  /** A serial for a raw message (never reused by send). */
  nextSerial(): number {
    this.serial = this.serial >= 0xffffffff ? 1 : this.serial + 1;
    return this.serial;
  }

  /**
   * Call a method and resolve with the reply; an error reply rejects with DBusError. With
   * `timeoutMs`, a call unanswered by then rejects with NoReply (0 or none: wait for ever).
   */
  call(m: Omit<OutgoingMessage, 'type'>, options: { timeoutMs?: number } = {}): Promise<Message> {
    const what = `${m.interface ?? ''}.${m.member ?? ''}`;
    return new Promise((resolve, reject) => {
      const go = (): void => {
        if (this.closedReason !== undefined) {
          reject(new DBusError(`${DBUS_ERROR}Disconnected`, this.closedReason));
          return;
        }
        let serial: number;
        try {
          serial = this.send({
            ...m,
            type: METHOD_CALL,
            flags: (m.flags ?? 0) & ~NO_REPLY_EXPECTED,
          });
        } catch (e) {
          reject(e as Error);
          this.startWaiting();
          return;
        }
        this.expectReply(serial, options.timeoutMs ?? 0, what, resolve, reject);
      };
      if (this.pending.size < this.maxPendingCalls) go();
      else this.waiting.push(go);
    });
  }

  /**
   * Write a method call made by hand (`serial` from nextSerial) and wait for its reply, like
   * `call`: the fuzz test's raw client. A connection the bus drops for it rejects Disconnected.
   */
  callRaw(bytes: Buffer, serial: number, options: { timeoutMs?: number } = {}): Promise<Message> {
    return new Promise((resolve, reject) => {
      if (this.closedReason !== undefined) {
        reject(new DBusError(`${DBUS_ERROR}Disconnected`, this.closedReason));
        return;
      }
      this.expectReply(serial, options.timeoutMs ?? 0, `raw call ${serial}`, resolve, reject);
      this.socket.write(bytes);
    });
  }

  /** Wait for the reply to `serial` (NoReply after `timeoutMs`, when it is above 0). */
  private expectReply(
    serial: number,
    timeoutMs: number,
    what: string,
    resolve: (m: Message) => void,
    reject: (e: Error) => void,
  ): void {
    const p: PendingCall = { resolve, reject, timer: undefined };
    if (timeoutMs > 0) {
      p.timer = setTimeout(() => {
        this.settle(serial);
        reject(
          new DBusError(
            `${DBUS_ERROR}NoReply`,
            `${what} did not answer within ${timeoutMs / 1000} s`,
          ),
        );
      }, timeoutMs);
    }
    this.pending.set(serial, p);
  }

  /** Answer a call (nothing is sent when the caller asked for no reply). */
  reply(call: MessageHeader, signature: string, body: readonly unknown[]): void {
    if (call.flags & NO_REPLY_EXPECTED) return;
    this.send({
      type: METHOD_RETURN,
      replySerial: call.serial,
      destination: call.sender,
      signature,
      body,
    });
  }

  /** Answer a call with an error (nothing is sent when the caller asked for no reply). */
  replyError(call: MessageHeader, errorName: string, text: string): void {
    if (call.flags & NO_REPLY_EXPECTED || this.closedReason !== undefined) return;
    this.send({
      type: ERROR,
      replySerial: call.serial,
      destination: call.sender,
      errorName,
      signature: 's',
      body: [text],
    });
  }

  /** Close the connection; pending calls fail with Disconnected. */
  close(): void {
    if (this.closedReason !== undefined) return;
    this.shutDown('the connection was closed');
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private start(initial: Buffer): void {
    const framer = new MessageFramer<Accepted>({
      header: (h) => this.verdict(h),
      message: (h, buf, accepted) => this.received(h, buf, accepted),
    });
    const feed = (chunk: Buffer): void => {
      try {
        framer.push(chunk);
      } catch (e) {
        // Only a stream that is not D-Bus gets here: there is no next message to find.
        this.shutDown(`the bus sent bytes that are not a D-Bus message: ${(e as Error).message}`);
        this.socket.destroy();
      }
    };
    this.socket.on('data', feed);
    this.socket.on('end', () => this.shutDown('the bus closed the connection'));
    this.socket.on('close', () => this.shutDown('the bus connection closed'));
    this.socket.on('error', (e) => this.shutDown(`bus connection error: ${e.message}`));
    if (initial.length > 0) feed(initial);
    this.socket.resume();
  }

  private shutDown(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    const error = new DBusError(`${DBUS_ERROR}Disconnected`, reason);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.pending.clear();
    for (const start of this.waiting.splice(0)) start();
    for (const l of this.closeListeners) l(reason);
    this.closeListeners.clear();
  }

  /** Decide from the header alone whether the body is worth reading. */
  private verdict(h: MessageHeader): Accepted | undefined {
    try {
      switch (h.type) {
        case METHOD_CALL: {
          const verdict = this.callHandler
            ? this.callHandler.admit(h)
            : {
                refuse: {
                  errorName: `${DBUS_ERROR}UnknownMethod`,
                  text: 'this connection serves no objects',
                },
              };
          if ('accept' in verdict) return { kind: 'call', token: verdict.accept };
          this.stats.callsRefused++;
          this.replyError(h, verdict.refuse.errorName, verdict.refuse.text);
          return undefined;
        }
        case METHOD_RETURN:
        case ERROR:
          // A reply nobody waits for (timed out, or never asked) is not read.
          return h.replySerial !== undefined && this.pending.has(h.replySerial) ? OTHER : undefined;
        case SIGNAL:
          for (const l of this.signalListeners) if (l.accepts(h)) return OTHER;
          this.stats.signalsIgnored++;
          return undefined;
        default:
          return undefined; // message types of later versions of the protocol are ignored
      }
    } catch (e) {
      this.internalError(e, h);
      if (h.type === METHOD_CALL) this.safeReplyError(h, `${DBUS_ERROR}Failed`, 'internal error');
      return undefined;
    }
  }

  private received(h: MessageHeader, buf: Buffer, accepted: Accepted): void {
    if (accepted.kind === 'call') {
      const handler = this.callHandler;
      if (!handler) return;
      const call: IncomingCall<unknown> = {
        header: h,
        token: accepted.token,
        bodyNow: () => {
          if (h.bodyLength > DECODE_AT_ONCE_BYTES) return undefined;
          let body: unknown[] = [];
          this.decode(
            h,
            buf,
            (values) => (body = values),
            (why) => {
              throw new BodyError(why);
            },
          );
          return body;
        },
        body: () =>
          new Promise((resolve, reject) =>
            this.decode(h, buf, resolve, (why) => reject(new BodyError(why))),
          ),
      };
      this.guard(h, () => handler.handle(call));
      return;
    }
    const entry = { ready: false, deliver: (): void => undefined };
    this.ordered.push(entry);
    const ready = (deliver: () => void): void => {
      entry.deliver = deliver;
      entry.ready = true;
      while (this.ordered.length > 0 && this.ordered[0].ready) {
        const next = this.ordered.shift() as { deliver: () => void };
        this.guard(h, next.deliver);
      }
    };
    this.decode(
      h,
      buf,
      (body) => ready(() => this.route({ ...h, body })),
      (why) =>
        ready(() => {
          if (h.type === SIGNAL) {
            this.stats.signalsDropped++;
            return;
          }
          this.settleWithError(h, `${DBUS_ERROR}InconsistentMessage`, `unreadable reply: ${why}`);
        }),
    );
  }

  /** Decode a body, in slices when it is big; `failed` gets a one-line reason. */
  private decode(
    h: MessageHeader,
    buf: Buffer,
    done: (body: unknown[]) => void,
    failed: (why: string) => void,
  ): void {
    let decoder: BodyDecoder;
    try {
      decoder = new BodyDecoder(buf, h.littleEndian, parseSignature(h.signature), {
        base: h.headerLength,
        unixFds: h.unixFds,
      });
    } catch (e) {
      failed((e as Error).message);
      return;
    }
    const step = (): void => {
      let finished: boolean;
      try {
        finished = decoder.run(performance.now() + SLICE_MS);
      } catch (e) {
        if (!(e instanceof DecodeError)) this.internalError(e, h);
        failed((e as Error).message);
        return;
      }
      if (finished) done(decoder.result());
      else setImmediate(step);
    };
    step();
  }

  private route(m: Message): void {
    if (m.type === SIGNAL) {
      for (const l of [...this.signalListeners]) {
        if (!l.accepts(m)) continue;
        this.guard(m, () => l.handle(m));
      }
      return;
    }
    const p = m.replySerial === undefined ? undefined : this.pending.get(m.replySerial);
    if (!p) return;
    this.settle(m.replySerial as number);
    if (m.type === ERROR) {
      const text = typeof m.body[0] === 'string' ? m.body[0] : '';
      p.reject(new DBusError(m.errorName ?? `${DBUS_ERROR}Failed`, text));
    } else {
      p.resolve(m);
    }
  }

  private settleWithError(h: MessageHeader, name: string, text: string): void {
    const p = h.replySerial === undefined ? undefined : this.pending.get(h.replySerial);
    if (!p) return;
    this.settle(h.replySerial as number);
    p.reject(new DBusError(name, text));
  }

  /** Forget a pending call and let a waiting one go. */
  private settle(serial: number): void {
    const p = this.pending.get(serial);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(serial);
    this.startWaiting();
  }

  private startWaiting(): void {
    while (this.waiting.length > 0 && this.pending.size < this.maxPendingCalls) {
      (this.waiting.shift() as () => void)();
    }
  }

  /** Run `f`; an exception is reported and the connection goes on. */
  private guard(h: MessageHeader, f: () => void): void {
    try {
      f();
    } catch (e) {
      this.internalError(e, h);
      if (h.type === METHOD_CALL) this.safeReplyError(h, `${DBUS_ERROR}Failed`, 'internal error');
    }
  }

  private safeReplyError(h: MessageHeader, name: string, text: string): void {
    try {
      this.replyError(h, name, text.length > 300 ? text.slice(0, 299) + '…' : text);
    } catch (e) {
      this.internalError(e, h);
    }
  }

  private internalError(e: unknown, h: MessageHeader): void {
    this.stats.internalErrors++;
    const report =
      this.options.onInternalError ??
      ((err: unknown, hdr: MessageHeader) =>
        process.stderr.write(
          `dbus: error handling ${hdr.member ?? 'a message'} from ${hdr.sender ?? '?'}: ${
            err instanceof Error ? err.message : String(err)
          }\n`,
        ));
    try {
      report(e, h);
    } catch {
      // Reporting must not be what breaks the connection.
    }
  }
}

function connectSocket(t: SocketTarget): Promise<net.Socket> {
  if (t.kind === 'abstract') {
    try {
      return Promise.resolve(connectAbstract(t.name));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }
  return new Promise((resolve, reject) => {
    const socket =
      t.kind === 'unix'
        ? net.createConnection({ path: t.path })
        : net.createConnection({ host: t.host, port: t.port, family: t.family });
    const what = t.kind === 'unix' ? t.path : `${t.host}:${t.port}`;
    socket.once('connect', () => {
      socket.off('error', onError);
      if (t.kind === 'tcp') socket.setNoDelay(true);
      resolve(socket);
    });
    const onError = (e: NodeJS.ErrnoException): void =>
      reject(new Error(`${what}: ${e.code ?? e.message}`));
    socket.once('error', onError);
  });
}
