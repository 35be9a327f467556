import type { Caller } from './caller';
import type { WireValue } from './values';
import { fixedBodySize, parseSignature } from './wire/signature';

/**
 * Declarative description of one D-Bus interface, in the spirit of systemd's vtables:
 * a table of members (name, signature, handler or getter), then small handlers that check,
 * call the logic and reply. The server generates introspection, Properties and signals from it.
 */

/** `[name, signature]` of one argument. */
export type Arg = readonly [name: string, type: string];

export interface CallContext {
  readonly caller: Caller;
  /** The object path the call was made on (for per-object interfaces such as Task). */
  readonly path: string;
}

/**
 * Who may call a method, checked by the ObjectServer before the handler runs (the handler
 * never checks it itself): `anyone`; `privileged` (root, the daemon's own user, or the
 * `vigil` group); `owner` (root or the UID the interface's `owner` says owns the object).
 */
export type Access = 'anyone' | 'privileged' | 'owner';

export const ACCESS_VALUES: readonly Access[] = ['anyone', 'privileged', 'owner'];

export interface MethodSpec<T> {
  readonly name: string;
  readonly access: Access;
  readonly in: readonly Arg[];
  readonly out: readonly Arg[];
  /**
   * The most bytes of arguments the method can ever need; a call with a bigger body is refused
   * (LimitExceeded) from its header, before the body is read. Default: exact for fixed-size
   * signatures, DEFAULT_MAX_BODY_BYTES otherwise. See maxBodyBytes().
   */
  readonly maxBodyBytes?: number;
  /**
   * Costly to serve (big arguments to decode, big replies to build): a UID may have only a few
   * such calls running at once (ServerLimits.maxHeavyPerUid); the excess gets LimitExceeded.
   */
  readonly heavy?: boolean;
  /**
   * Runs the call. Arguments arrive already checked against `in`. Return nothing for no
   * out-args, the value for one, an array for several. Throw VigilError for a named error.
   */
  readonly handler: (
    target: T,
    args: readonly WireValue[],
    ctx: CallContext,
  ) => WireValue | void | Promise<WireValue | void>;
}

/**
 * How a property changes, as the introspection's EmitsChangedSignal annotation says:
 * `emits` (every change is announced with PropertiesChanged), `const` (never changes for the
 * object's lifetime; never announced), `silent` (changes too often to announce, e.g. frame
 * counters; read it when needed).
 */
export type PropertyChange = 'emits' | 'const' | 'silent';

export interface PropertySpec<T> {
  readonly name: string;
  readonly type: string;
  readonly get: (target: T) => WireValue;
  readonly change: PropertyChange;
}

export interface SignalSpec {
  readonly name: string;
  readonly args: readonly Arg[];
}

export interface InterfaceSpec<T> {
  readonly name: string;
  readonly methods: readonly MethodSpec<T>[];
  readonly properties: readonly PropertySpec<T>[];
  readonly signals: readonly SignalSpec[];
  /** The UID that owns an object, for methods with access `owner` (e.g. a Task's owner). */
  readonly owner?: (target: T) => number;
  /** What the object is called in access-denied messages, e.g. `task 1a2b`. */
  readonly describe?: (target: T) => string;
}

/**
 * Refuse a table that does not say who may call each method (or says `owner` without saying
 * who the owner is): access is never left to a handler's memory.
 */
export function checkInterfaceSpec(spec: InterfaceSpec<unknown>): void {
  for (const m of spec.methods) {
    if (!ACCESS_VALUES.includes(m.access)) {
      throw new Error(`${spec.name}.${m.name} has no access value (anyone, privileged or owner)`);
    }
    if (m.access === 'owner' && !spec.owner) {
      throw new Error(`${spec.name}.${m.name} is owner-only but ${spec.name} names no owner`);
    }
  }
  for (const p of spec.properties) {
    if (!['emits', 'const', 'silent'].includes(p.change)) {
      throw new Error(`${spec.name}.${p.name} has no change value (emits, const or silent)`);
    }
  }
}

/** An interface table bound to the object that implements it, ready to export. */
export interface Binding {
  readonly spec: InterfaceSpec<unknown>;
  readonly target: unknown;
}

export function bind<T>(spec: InterfaceSpec<T>, target: T): Binding {
  checkInterfaceSpec(spec as InterfaceSpec<unknown>);
  return { spec: spec as InterfaceSpec<unknown>, target };
}

/** The signature of an argument list (remembered: the server asks for it on every call). */
export function signature(args: readonly Arg[]): string {
  let sig = signatures.get(args);
  if (sig === undefined) {
    sig = args.map(([, type]) => type).join('');
    signatures.set(args, sig);
  }
  return sig;
}
const signatures = new WeakMap<readonly Arg[], string>();

/** The body limit of a method whose signature has strings, arrays or variants, unless it says. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** The largest body a call of `sig` can need (`declared` when the row says). */
export function maxBodyBytes(sig: string, declared?: number): number {
  return declared ?? fixedBodySize(parseSignature(sig)) ?? DEFAULT_MAX_BODY_BYTES;
}

/** Build the introspection XML of one interface (also used to write services/*.xml). */
export function interfaceXml(spec: InterfaceSpec<unknown>, indent = '  '): string {
  const i1 = indent;
  const i2 = indent + '  ';
  const i3 = i2 + '  ';
  const lines = [`${i1}<interface name="${spec.name}">`];
  for (const m of spec.methods) {
    if (m.in.length === 0 && m.out.length === 0) {
      lines.push(`${i2}<method name="${m.name}"/>`);
      continue;
    }
    lines.push(`${i2}<method name="${m.name}">`);
    for (const [name, type] of m.in)
      lines.push(`${i3}<arg name="${name}" type="${type}" direction="in"/>`);
    for (const [name, type] of m.out)
      lines.push(`${i3}<arg name="${name}" type="${type}" direction="out"/>`);
    lines.push(`${i2}</method>`);
  }
  for (const s of spec.signals) {
    if (s.args.length === 0) {
      lines.push(`${i2}<signal name="${s.name}"/>`);
      continue;
    }
    lines.push(`${i2}<signal name="${s.name}">`);
    for (const [name, type] of s.args) lines.push(`${i3}<arg name="${name}" type="${type}"/>`);
    lines.push(`${i2}</signal>`);
  }
  for (const p of spec.properties) {
    if (p.change === 'emits') {
      lines.push(`${i2}<property name="${p.name}" type="${p.type}" access="read"/>`);
    } else {
      const value = p.change === 'const' ? 'const' : 'false';
      lines.push(`${i2}<property name="${p.name}" type="${p.type}" access="read">`);
      lines.push(
        `${i3}<annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="${value}"/>`,
      );
      lines.push(`${i2}</property>`);
    }
  }
  lines.push(`${i1}</interface>`);
  return lines.join('\n');
}

export const XML_DOCTYPE =
  '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n' +
  ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">';
