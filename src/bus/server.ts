import { ERROR_PREFIX, isVigilError, messageOf, VigilError } from '../core/errors';
import { log } from '../core/log';
import { authorize } from './access';
import type { Caller } from './caller';
import { CallerRegistry } from './caller';
import {
  type Binding,
  type CallContext,
  type InterfaceSpec,
  type MethodSpec,
  type PropertySpec,
  interfaceXml,
  maxBodyBytes,
  signature,
  XML_DOCTYPE,
} from './interface';
import { CallLimits, DEFAULT_LIMITS, type ServerLimits } from './limits';
import {
  DBUS_ERROR,
  INTROSPECTABLE,
  machineId,
  OBJECT_MANAGER,
  OBJECT_MANAGER_XML,
  PEER,
  PROPERTIES,
  STANDARD_XML,
} from './standard';
import { Variant, type WireValue } from './values';
import { MarshalError } from './wire/marshal';
import { SIGNAL, type MessageHeader } from './wire/message';
import {
  BodyError,
  type BusConnection,
  type IncomingCall,
  MessageTooLargeError,
  type Refusal,
} from './wire/connection';

/** A D-Bus error reply that is not one of the contract's own (protocol-level mistakes). */
class ProtocolError extends Error {
  constructor(
    readonly dbusName: string,
    message: string,
  ) {
    super(message);
  }
}

type ExportedObject = Map<string, Binding>;

/** A reply: its signature and values. */
type Reply = [string, unknown[]];

/**
 * Where an admitted call goes, worked out from its header alone: the checks to run before its
 * body is decoded, then what to run with the body.
 */
interface Route {
  /** `Interface.member`, for messages. */
  readonly name: string;
  readonly maxBody: number;
  readonly heavy: boolean;
  readonly authorize?: (caller: Caller) => Promise<void>;
  readonly run: (body: WireValue[], ctx: CallContext) => Reply | Promise<Reply>;
}

const NO_REPLY: Reply = ['', []];

/**
 * Serves our objects on a bus connection. It is the CallHandler of the connection: from each
 * call's header alone it finds the method, checks the signature, the body's size against the
 * method's limit and the caller's connection against its in-flight limit, and refuses without
 * reading the body when any fails. Admitted calls then have their access checked (and, for
 * heavy ones, a per-UID slot taken) before the body is decoded and the handler runs. It also
 * implements Introspectable, Properties (read-only: Set is refused), Peer and the ObjectManager
 * at `root`, and never sends a reply or signal larger than the bus passes.
 */
export class ObjectServer {
  private readonly objects = new Map<string, ExportedObject>();
  readonly callers: CallerRegistry;
  private readonly limits: CallLimits;
  private accepting = true;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly bus: BusConnection,
    private readonly root: string,
    limits: Partial<ServerLimits> = {},
  ) {
    this.callers = new CallerRegistry(bus);
    this.limits = new CallLimits({ ...DEFAULT_LIMITS, ...limits });
    bus.limitMessageSize(this.limits.limits.maxMessageBytes);
    bus.serve<Route>({
      admit: (h) => this.admit(h),
      handle: (call) => this.handle(call),
    });
  }

  /** Export `bindings` at `path`; objects below the root are announced by the ObjectManager. */
  export(path: string, bindings: readonly Binding[]): void {
    if (this.objects.has(path)) throw new Error(`object ${path} is already exported`);
    const obj: ExportedObject = new Map(bindings.map((b) => [b.spec.name, b]));
    this.objects.set(path, obj);
    if (this.isManaged(path)) {
      this.emit(this.root, OBJECT_MANAGER, 'InterfacesAdded', 'oa{sa{sv}}', [
        path,
        this.interfacesAndProperties(obj),
      ]);
    }
  }

  unexport(path: string): void {
    const obj = this.objects.get(path);
    if (!obj) return;
    this.objects.delete(path);
    if (this.isManaged(path)) {
      this.emit(this.root, OBJECT_MANAGER, 'InterfacesRemoved', 'oas', [path, [...obj.keys()]]);
    }
  }

  has(path: string): boolean {
    return this.objects.has(path);
  }

  /** Emit a signal of one of our interfaces; the signature comes from its table. */
  signal(
    path: string,
    spec: Pick<InterfaceSpec<never>, 'name' | 'signals'>,
    name: string,
    args: WireValue[],
  ): void {
    const s = spec.signals.find((x) => x.name === name);
    if (!s) throw new Error(`${spec.name} has no signal ${name}`);
    this.emit(path, spec.name, name, signature(s.args), args);
  }

  /** Announce the current values of `names` (all of them when omitted) with PropertiesChanged. */
  propertiesChanged(path: string, ifaceName: string, names?: readonly string[]): void {
    const binding = this.objects.get(path)?.get(ifaceName);
    if (!binding) return;
    const changed: Record<string, Variant> = {};
    for (const p of binding.spec.properties) {
      if (p.change !== 'emits' || (names && !names.includes(p.name))) continue;
      changed[p.name] = this.propertyValue(p, binding.target);
    }
    if (Object.keys(changed).length === 0) return;
    this.emit(path, PROPERTIES, 'PropertiesChanged', 'sa{sv}as', [ifaceName, changed, []]);
  }

  /** A peer left the bus (NameOwnerChanged): forget its credentials and counters. */
  peerGone(uniqueName: string): void {
    this.callers.forget(uniqueName);
    this.limits.forget(uniqueName);
  }

  /** Stop taking calls (shutdown): new calls get an error, calls already running may finish. */
  async drain(timeoutMs: number): Promise<void> {
    this.accepting = false;
    const all = Promise.allSettled([...this.running]);
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  private isManaged(path: string): boolean {
    return path.startsWith(this.root + '/');
  }

  private emit(path: string, iface: string, member: string, sig: string, body: unknown[]): void {
    try {
      this.bus.send({ type: SIGNAL, path, interface: iface, member, signature: sig, body });
    } catch (e) {
      // Too big for the bus, or a value our own table cannot marshal: never worth the connection.
      log.error(`cannot emit ${iface}.${member} on ${path}: ${messageOf(e)}`);
    }
  }

  private propertyValue(p: PropertySpec<unknown>, target: unknown): Variant {
    return new Variant(p.type, p.get(target));
  }

  private allProperties(binding: Binding): Record<string, Variant> {
    const out: Record<string, Variant> = {};
    for (const p of binding.spec.properties) out[p.name] = this.propertyValue(p, binding.target);
    return out;
  }

  private interfacesAndProperties(obj: ExportedObject): Record<string, Record<string, Variant>> {
    const out: Record<string, Record<string, Variant>> = {};
    for (const [name, binding] of obj) out[name] = this.allProperties(binding);
    return out;
  }

  /** The connection asks, from the header alone: serve this call, or refuse it unread. */
  private admit(h: MessageHeader): { refuse: Refusal } | { accept: Route } {
    if (!this.accepting) {
      return refuse(DBUS_ERROR + 'NoServer', 'vigil is shutting down');
    }
    let route: Route;
    try {
      route = this.resolve(h);
    } catch (e) {
      if (isVigilError(e)) return refuse(e.dbusName, e.message);
      if (e instanceof ProtocolError) return refuse(e.dbusName, e.message);
      throw e;
    }
    if (h.bodyLength > route.maxBody) {
      return refuse(
        `${ERROR_PREFIX}LimitExceeded`,
        `${route.name} takes at most ${route.maxBody} bytes of arguments, not ${h.bodyLength}`,
      );
    }
    const busy = this.limits.admitCall(h.sender ?? '');
    if (busy) return refuse(`${ERROR_PREFIX}LimitExceeded`, busy);
    return { accept: route };
  }

  private handle(call: IncomingCall<Route>): void {
    const h = call.header;
    const route = call.token;
    const sender = h.sender ?? '';
    // Most calls (quick, Get, GetAll, Ping...) need no credentials, have a small body and a
    // handler that answers at once: served here without a promise in between.
    if (!route.authorize && !route.heavy) {
      let reply: Reply | Promise<Reply> | undefined;
      try {
        const body = call.bodyNow() as WireValue[] | undefined;
        if (body !== undefined) {
          reply = route.run(body, { caller: this.callers.forSender(sender), path: h.path ?? '' });
        }
      } catch (e) {
        this.fail(h, e);
        this.limits.callDone(sender);
        return;
      }
      if (reply !== undefined && !(reply instanceof Promise)) {
        this.reply(h, route, reply[0], reply[1]);
        this.limits.callDone(sender);
        return;
      }
      if (reply !== undefined) {
        this.track(
          sender,
          reply.then(
            ([sig, values]) => this.reply(h, route, sig, values),
            (e: unknown) => this.fail(h, e),
          ),
        );
        return;
      }
    }
    this.track(sender, this.serve(call));
  }

  /** Keep a call being answered until it is (drain waits for these). */
  private track(sender: string, work: Promise<void>): void {
    const done = work.finally(() => {
      this.limits.callDone(sender);
      this.running.delete(done);
    });
    this.running.add(done);
  }

  private async serve(call: IncomingCall<Route>): Promise<void> {
    const h = call.header;
    const route = call.token;
    let release: (() => void) | undefined;
    try {
      const caller = this.callers.forSender(h.sender ?? '');
      if (route.authorize) await route.authorize(caller);
      if (route.heavy) release = await this.limits.takeHeavySlot(caller, route.name);
      const body = (await call.body()) as WireValue[];
      const [sig, values] = await route.run(body, { caller, path: h.path ?? '' });
      this.reply(h, route, sig, values);
    } catch (e) {
      this.fail(h, e);
    } finally {
      release?.();
    }
  }

  private reply(h: MessageHeader, route: Route, sig: string, values: unknown[]): void {
    try {
      this.bus.reply(h, sig, values);
    } catch (e) {
      if (e instanceof MessageTooLargeError) {
        // The bus daemon drops a connection that sends a message over its limit: the whole
        // daemon would go, not just this call.
        const mib = this.limits.limits.maxMessageBytes / 2 ** 20;
        this.fail(
          h,
          new VigilError(
            'LimitExceeded',
            `the reply to ${route.name} would exceed the bus message size limit (${mib} MiB); ask for less`,
          ),
        );
      } else {
        // A value that cannot be marshalled is our bug; the caller still gets an answer.
        log.error(
          `cannot send the reply to ${route.name} from ${h.sender ?? '?'}: ${messageOf(e)}`,
        );
        this.fail(h, new Error('internal error'));
      }
    }
  }

  private fail(h: MessageHeader, e: unknown): void {
    let name: string;
    let text: string;
    if (isVigilError(e)) [name, text] = [e.dbusName, e.message];
    else if (e instanceof ProtocolError) [name, text] = [e.dbusName, e.message];
    else if (e instanceof BodyError) [name, text] = [DBUS_ERROR + 'InvalidArgs', e.message];
    else {
      const what = `${h.interface ?? ''}.${h.member ?? ''} on ${h.path ?? ''}`;
      log.error(`${what} from ${h.sender ?? '?'} failed: ${messageOf(e)}`);
      [name, text] = [`${ERROR_PREFIX}Failed`, messageOf(e)];
    }
    try {
      this.bus.replyError(h, name, oneLine(text));
    } catch (sendError) {
      if (!(sendError instanceof MarshalError)) throw sendError;
      log.error(`cannot send an error reply to ${h.sender ?? '?'}: ${messageOf(sendError)}`);
    }
  }

  /** Find what a call asks for, from its header: the checks and the work, or a named error. */
  private resolve(h: MessageHeader): Route {
    const path = h.path ?? '';
    const member = h.member ?? '';
    const iface = h.interface ?? '';
    const sig = h.signature;
    const obj = this.objects.get(path);

    if (iface === PEER || (iface === '' && (member === 'Ping' || member === 'GetMachineId'))) {
      if (member === 'Ping') return fixed(PEER, member, sig, () => NO_REPLY);
      if (member === 'GetMachineId') return fixed(PEER, member, sig, () => ['s', [machineId()]]);
      throw new ProtocolError(DBUS_ERROR + 'UnknownMethod', `no method ${member} in ${PEER}`);
    }
    if (iface === INTROSPECTABLE || (iface === '' && member === 'Introspect')) {
      if (member !== 'Introspect') {
        throw new ProtocolError(
          DBUS_ERROR + 'UnknownMethod',
          `no method ${member} in ${INTROSPECTABLE}`,
        );
      }
      noArguments(INTROSPECTABLE, member, sig);
      if (!obj && !this.hasChildren(path)) {
        throw this.isManaged(path) ? notFound(path) : unknownObject(path);
      }
      return fixed(INTROSPECTABLE, member, sig, () => ['s', [this.introspect(path)]]);
    }
    if (!obj) throw this.isManaged(path) ? notFound(path) : unknownObject(path);

    if (iface === PROPERTIES) return this.propertiesRoute(obj, member, sig);
    if (
      (iface === OBJECT_MANAGER || iface === '') &&
      path === this.root &&
      member === 'GetManagedObjects'
    ) {
      noArguments(OBJECT_MANAGER, member, sig);
      return {
        ...fixed(OBJECT_MANAGER, member, sig, () => ['a{oa{sa{sv}}}', [this.managedObjects()]]),
        heavy: true,
      };
    }

    const bindings = iface ? [obj.get(iface)].filter((b) => b !== undefined) : [...obj.values()];
    for (const binding of bindings) {
      const method = binding.spec.methods.find((m) => m.name === member);
      if (method) return methodRoute(binding, method, sig);
    }
    if (iface && !obj.has(iface) && iface !== OBJECT_MANAGER) {
      throw new ProtocolError(DBUS_ERROR + 'UnknownInterface', `no interface ${iface} at ${path}`);
    }
    throw new ProtocolError(
      DBUS_ERROR + 'UnknownMethod',
      `no method ${member} in ${iface || 'any interface'} at ${path}`,
    );
  }

  private propertiesRoute(obj: ExportedObject, member: string, sig: string): Route {
    const expected = { Get: 'ss', GetAll: 's', Set: 'ssv' }[member];
    if (expected === undefined) {
      throw new ProtocolError(DBUS_ERROR + 'UnknownMethod', `no method ${member} in ${PROPERTIES}`);
    }
    if (sig !== expected) {
      throw new ProtocolError(DBUS_ERROR + 'InvalidArgs', `${member} takes (${expected})`);
    }
    return {
      name: `${PROPERTIES}.${member}`,
      maxBody: maxBodyBytes(expected),
      heavy: false,
      run: (body) => this.properties(obj, member, body),
    };
  }

  private properties(obj: ExportedObject, member: string, body: WireValue[]): Reply {
    const ifaceName = String(body[0]);
    const binding = obj.get(ifaceName);
    if (member === 'GetAll') {
      // The standard interfaces have no properties; any other unknown name is an error.
      if (!binding) {
        if ([PEER, INTROSPECTABLE, PROPERTIES, OBJECT_MANAGER].includes(ifaceName)) {
          return ['a{sv}', [{}]];
        }
        throw new ProtocolError(DBUS_ERROR + 'UnknownInterface', `no interface ${ifaceName}`);
      }
      return ['a{sv}', [this.allProperties(binding)]];
    }
    const prop = binding?.spec.properties.find((p) => p.name === String(body[1]));
    if (!binding || !prop) {
      throw new ProtocolError(
        DBUS_ERROR + 'UnknownProperty',
        `no property ${ifaceName}.${String(body[1])}`,
      );
    }
    if (member === 'Get') return ['v', [this.propertyValue(prop, binding.target)]];
    // Every property of the contract is read-only: refuse and keep the value.
    throw new ProtocolError(
      DBUS_ERROR + 'PropertyReadOnly',
      `property ${ifaceName}.${prop.name} is read-only`,
    );
  }

  private managedObjects(): Record<string, Record<string, Record<string, Variant>>> {
    const out: Record<string, Record<string, Record<string, Variant>>> = {};
    for (const [path, obj] of this.objects) {
      if (this.isManaged(path)) out[path] = this.interfacesAndProperties(obj);
    }
    return out;
  }

  private hasChildren(path: string): boolean {
    const prefix = path === '/' ? '/' : path + '/';
    for (const p of this.objects.keys()) if (p.startsWith(prefix)) return true;
    return false;
  }

  private introspect(path: string): string {
    const parts = [XML_DOCTYPE, '<node>'];
    const obj = this.objects.get(path);
    if (obj) {
      parts.push(STANDARD_XML);
      if (path === this.root) parts.push(OBJECT_MANAGER_XML);
      for (const binding of obj.values()) parts.push(interfaceXml(binding.spec));
    }
    const prefix = path === '/' ? '/' : path + '/';
    const children = new Set<string>();
    for (const p of this.objects.keys()) {
      if (p.startsWith(prefix)) children.add(p.slice(prefix.length).split('/')[0]);
    }
    for (const child of [...children].sort()) parts.push(`  <node name="${child}"/>`);
    parts.push('</node>');
    return parts.join('\n') + '\n';
  }
}

function refuse(errorName: string, text: string): { refuse: Refusal } {
  return { refuse: { errorName, text: oneLine(text) } };
}

/** A standard method without arguments. */
function fixed(iface: string, member: string, sig: string, run: () => Reply): Route {
  noArguments(iface, member, sig);
  return { name: `${iface}.${member}`, maxBody: 0, heavy: false, run };
}

/** A method of one of our tables: signature checked here, access before the body is read. */
function methodRoute(binding: Binding, method: MethodSpec<unknown>, sig: string): Route {
  const name = `${binding.spec.name}.${method.name}`;
  const expected = signature(method.in);
  if (sig !== expected) {
    throw new ProtocolError(
      DBUS_ERROR + 'InvalidArgs',
      `${name} takes (${expected}), not (${sig})`,
    );
  }
  const outSig = signature(method.out);
  const single = method.out.length === 1;
  const toReply = (result: WireValue | void): Reply => {
    if (method.out.length === 0) return NO_REPLY;
    return [outSig, single ? [result] : (result as unknown[])];
  };
  return {
    name,
    maxBody: maxBodyBytes(expected, method.maxBodyBytes),
    heavy: method.heavy === true,
    authorize:
      method.access === 'anyone' ? undefined : (caller) => authorize(binding, method, caller),
    run: (body, ctx) => {
      const result = method.handler(binding.target, body, ctx);
      return result instanceof Promise ? result.then(toReply) : toReply(result);
    },
  };
}

/** Below our root, a missing object is a task or host that does not exist (any more). */
function notFound(path: string): VigilError {
  return new VigilError('NotFound', `no object at ${path}: it does not exist or has expired`);
}

/** The standard methods without arguments refuse any, as sd-bus and GDBus do. */
function noArguments(iface: string, member: string, sig: string): void {
  if (sig !== '') {
    throw new ProtocolError(DBUS_ERROR + 'InvalidArgs', `${iface}.${member} takes no arguments`);
  }
}

function unknownObject(path: string): ProtocolError {
  return new ProtocolError(DBUS_ERROR + 'UnknownObject', `no object at ${path}`);
}

const MAX_ERROR_TEXT = 300;

/**
 * Error messages are one short line (the contract says so), even when they quote what a
 * caller sent: control characters become spaces and the text is cut at MAX_ERROR_TEXT.
 */
function oneLine(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ');
  return flat.length > MAX_ERROR_TEXT ? flat.slice(0, MAX_ERROR_TEXT - 1) + '…' : flat;
}
