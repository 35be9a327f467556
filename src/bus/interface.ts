import type { Caller } from './caller';
import type { WireValue } from './values';

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

export interface MethodSpec<T> {
  readonly name: string;
  readonly in: readonly Arg[];
  readonly out: readonly Arg[];
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

export interface PropertySpec<T> {
  readonly name: string;
  readonly type: string;
  readonly get: (target: T) => WireValue;
  /** Whether changes are announced through PropertiesChanged (the introspection says so too). */
  readonly emitsChange: boolean;
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
}

/** An interface table bound to the object that implements it, ready to export. */
export interface Binding {
  readonly spec: InterfaceSpec<unknown>;
  readonly target: unknown;
}

export function bind<T>(spec: InterfaceSpec<T>, target: T): Binding {
  return { spec: spec as InterfaceSpec<unknown>, target };
}

export function signature(args: readonly Arg[]): string {
  return args.map(([, type]) => type).join('');
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
    if (p.emitsChange) {
      lines.push(`${i2}<property name="${p.name}" type="${p.type}" access="read"/>`);
    } else {
      lines.push(`${i2}<property name="${p.name}" type="${p.type}" access="read">`);
      lines.push(
        `${i3}<annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="false"/>`,
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
