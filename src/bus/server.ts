import fs from 'node:fs';
import { Message, MessageType, type MessageBus, Variant } from '@particle/dbus-next';
import { ERROR_PREFIX, isVigilError, messageOf, VigilError } from '../core/errors';
import { log } from '../core/log';
import { type Caller, CallerRegistry, PRIVILEGED_GROUP } from './caller';
import {
  type Binding,
  type InterfaceSpec,
  type MethodSpec,
  type PropertySpec,
  interfaceXml,
  signature,
  XML_DOCTYPE,
} from './interface';
import type { WireValue } from './values';

const DBUS_ERROR = 'org.freedesktop.DBus.Error.';
const PROPERTIES = 'org.freedesktop.DBus.Properties';
const INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable';
const PEER = 'org.freedesktop.DBus.Peer';
const OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager';

/** A D-Bus error reply that is not one of the contract's own (protocol-level mistakes). */
class ProtocolError extends Error {
  constructor(
    readonly dbusName: string,
    message: string,
  ) {
    super(message);
  }
}

/** Standard interfaces every object carries, described with the same tables as ours. */
const STANDARD_XML = `  <interface name="${PEER}">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="${INTROSPECTABLE}">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="${PROPERTIES}">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="properties" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>`;

const OBJECT_MANAGER_XML = `  <interface name="${OBJECT_MANAGER}">
    <method name="GetManagedObjects">
      <arg name="objects" type="a{oa{sa{sv}}}" direction="out"/>
    </method>
    <signal name="InterfacesAdded">
      <arg name="object" type="o"/>
      <arg name="interfaces" type="a{sa{sv}}"/>
    </signal>
    <signal name="InterfacesRemoved">
      <arg name="object" type="o"/>
      <arg name="interfaces" type="as"/>
    </signal>
  </interface>`;

type ExportedObject = Map<string, Binding>;

/**
 * Serves our objects on a bus connection. It takes every method call addressed to this
 * connection (so it knows the sender, can answer asynchronously and never lets the bus library
 * assign a read-only property), checks signatures, dispatches to the interface tables, and
 * implements Introspectable, Properties, Peer and the ObjectManager at `root`.
 */
export class ObjectServer {
  private readonly objects = new Map<string, ExportedObject>();
  readonly callers: CallerRegistry;
  private accepting = true;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly bus: MessageBus,
    private readonly root: string,
  ) {
    this.callers = new CallerRegistry(bus);
    bus.addMethodHandler((msg: Message) => {
      this.dispatch(msg);
      return true;
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

  /** Stop taking calls (shutdown): new calls get an error, calls already running may finish. */
  async drain(timeoutMs: number): Promise<void> {
    this.accepting = false;
    const all = Promise.allSettled([...this.inFlight]);
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  private isManaged(path: string): boolean {
    return path.startsWith(this.root + '/');
  }

  private emit(path: string, iface: string, member: string, sig: string, body: unknown[]): void {
    try {
      this.bus.send(Message.newSignal(path, iface, member, sig, body));
    } catch (e) {
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

  private dispatch(msg: Message): void {
    const noReply = (msg.flags & 1) !== 0; // NO_REPLY_EXPECTED
    const reply = (m: Message): void => {
      if (noReply) return;
      try {
        this.bus.send(m);
      } catch (e) {
        // A value that cannot be marshalled is our bug; the caller still gets an answer.
        log.error(`cannot send reply to ${msg.interface}.${msg.member}: ${messageOf(e)}`);
        this.bus.send(errorReply(msg, `${ERROR_PREFIX}Failed`, 'internal error'));
      }
    };
    const fail = (e: unknown): void => {
      if (isVigilError(e)) {
        reply(errorReply(msg, e.dbusName, e.message));
      } else if (e instanceof ProtocolError) {
        reply(errorReply(msg, e.dbusName, e.message));
      } else {
        log.error(`${msg.interface}.${msg.member} on ${msg.path} failed: ${messageOf(e)}`);
        reply(errorReply(msg, `${ERROR_PREFIX}Failed`, messageOf(e)));
      }
    };
    if (!this.accepting) {
      fail(new ProtocolError(DBUS_ERROR + 'NoServer', 'vigil is shutting down'));
      return;
    }
    let work: Promise<void>;
    try {
      work = this.route(msg).then(([sig, body]) => {
        // The bus daemon drops a connection that sends a message over its limit: the whole
        // daemon would go, not just this call.
        if (wireSizeBound(body) > MAX_MESSAGE_BYTES) {
          fail(
            new VigilError(
              'LimitExceeded',
              `the reply to ${msg.member ?? ''} would exceed the bus message size limit ` +
                `(${MAX_MESSAGE_BYTES / 2 ** 20} MiB); ask for less`,
            ),
          );
          return;
        }
        reply(Message.newMethodReturn(msg, sig, body));
      }, fail);
    } catch (e) {
      fail(e);
      return;
    }
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  /** Find and run what a call asks for; resolves with the reply signature and body. */
  private async route(msg: Message): Promise<[string, unknown[]]> {
    if (msg.type !== MessageType.METHOD_CALL) return ['', []];
    const path = msg.path ?? '';
    const member = msg.member ?? '';
    const iface = msg.interface ?? '';
    const sig = msg.signature ?? '';
    const body = (msg.body ?? []) as WireValue[];
    const obj = this.objects.get(path);

    if (iface === PEER || (iface === '' && (member === 'Ping' || member === 'GetMachineId'))) {
      if (member === 'Ping' || member === 'GetMachineId') noArguments(PEER, member, sig);
      if (member === 'Ping') return ['', []];
      if (member === 'GetMachineId') return ['s', [machineId()]];
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
      return ['s', [this.introspect(path)]];
    }
    if (!obj) throw this.isManaged(path) ? notFound(path) : unknownObject(path);

    if (iface === PROPERTIES) return this.properties(obj, member, sig, body);
    if (
      (iface === OBJECT_MANAGER || iface === '') &&
      path === this.root &&
      member === 'GetManagedObjects'
    ) {
      noArguments(OBJECT_MANAGER, member, sig);
      return ['a{oa{sa{sv}}}', [this.managedObjects()]];
    }

    const bindings = iface ? [obj.get(iface)].filter((b) => b !== undefined) : [...obj.values()];
    for (const binding of bindings) {
      const method = binding.spec.methods.find((m) => m.name === member);
      if (!method) continue;
      const expected = signature(method.in);
      if (sig !== expected) {
        throw new ProtocolError(
          DBUS_ERROR + 'InvalidArgs',
          `${binding.spec.name}.${member} takes (${expected}), not (${sig})`,
        );
      }
      const ctx = { caller: this.callers.forSender(msg.sender ?? ''), path };
      await authorize(binding, method, ctx.caller);
      const result = await method.handler(binding.target, body, ctx);
      if (method.out.length === 0) return ['', []];
      const outSig = signature(method.out);
      return [outSig, method.out.length === 1 ? [result] : (result as unknown[])];
    }
    if (iface && !obj.has(iface) && iface !== OBJECT_MANAGER) {
      throw new ProtocolError(DBUS_ERROR + 'UnknownInterface', `no interface ${iface} at ${path}`);
    }
    throw new ProtocolError(
      DBUS_ERROR + 'UnknownMethod',
      `no method ${member} in ${iface || 'any interface'} at ${path}`,
    );
  }

  private properties(
    obj: ExportedObject,
    member: string,
    sig: string,
    body: WireValue[],
  ): [string, unknown[]] {
    const expected = { Get: 'ss', GetAll: 's', Set: 'ssv' }[member];
    if (expected === undefined) {
      throw new ProtocolError(DBUS_ERROR + 'UnknownMethod', `no method ${member} in ${PROPERTIES}`);
    }
    if (sig !== expected) {
      throw new ProtocolError(DBUS_ERROR + 'InvalidArgs', `${member} takes (${expected})`);
    }
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

/** dbus-daemon's default max_message_size (system and session bus alike). */
const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/** An upper bound of the marshalled size of a message body (padding and lengths included). */
function wireSizeBound(value: unknown): number {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return 8 + value.length;
  if (typeof value === 'string') return 9 + Buffer.byteLength(value);
  if (value instanceof Variant) return 8 + value.signature.length + wireSizeBound(value.value);
  if (Array.isArray(value)) {
    let size = 8;
    for (const v of value) size += 8 + wireSizeBound(v);
    return size;
  }
  if (value !== null && typeof value === 'object') {
    let size = 8;
    for (const [k, v] of Object.entries(value)) size += 16 + wireSizeBound(k) + wireSizeBound(v);
    return size;
  }
  return 8;
}

/**
 * Enforce a method row's access value before its handler runs; refusals are logged with the
 * caller's UID, so an administrator can see who tried what.
 */
async function authorize(
  binding: Binding,
  method: MethodSpec<unknown>,
  caller: Caller,
): Promise<void> {
  if (method.access === 'anyone') return;
  const member = `${binding.spec.name}.${method.name}`;
  if (method.access === 'privileged') {
    if (await caller.privileged()) return;
    const uid = await caller.uid();
    log.warning(`access denied: uid ${uid} (${caller.sender}) may not call ${member}`);
    throw new VigilError(
      'AccessDenied',
      `${member} needs root or membership of the ${PRIVILEGED_GROUP} group`,
    );
  }
  const uid = await caller.uid();
  const owner = binding.spec.owner?.(binding.target);
  if (uid === 0 || uid === owner) return;
  const what = binding.spec.describe?.(binding.target) ?? 'this object';
  log.warning(
    `access denied: uid ${uid} may not ${method.name.toLowerCase()} ${what} of uid ${owner ?? '?'}`,
  );
  throw new VigilError(
    'AccessDenied',
    `only the owner (uid ${owner ?? '?'}) or root may call ${method.name} on ${what}`,
  );
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

let cachedMachineId: string | undefined;
function machineId(): string {
  if (cachedMachineId === undefined) {
    try {
      cachedMachineId = fs.readFileSync('/etc/machine-id', 'utf8').trim();
    } catch {
      cachedMachineId = '';
    }
  }
  return cachedMachineId ?? '';
}

/** dbus-next's typings declare newError's first parameter as a string; it takes the call. */
function errorReply(call: Message, name: string, text: string): Message {
  return (Message.newError as unknown as (m: Message, n: string, t: string) => Message)(
    call,
    name,
    oneLine(text),
  );
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
