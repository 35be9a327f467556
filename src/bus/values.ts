import type { Typed, TypedDict, TypedValue } from '../core/typed';
import { Variant } from './wire/variant';

/**
 * The one place outside the bus layer's wiring that names the wire layer's value types:
 * everything else imports `Variant` from here.
 */
export { Variant };

/** What the wire layer marshals: plain values, Buffers, bigints, Variants, arrays and dicts. */
export type WireValue =
  | string
  | number
  | bigint
  | boolean
  | Buffer
  | Variant
  | WireValue[]
  | { [key: string]: WireValue };

export function toVariant(t: Typed): Variant {
  return new Variant(t.sig, toWire(t.sig, t.value));
}

/** A TypedDict as an `a{sv}` dict of Variants. */
export function toVariantDict(d: TypedDict): Record<string, Variant> {
  const out: Record<string, Variant> = {};
  for (const [k, v] of Object.entries(d)) out[k] = toVariant(v);
  return out;
}

function toWire(sig: string, value: TypedValue): WireValue {
  if (sig === 'v') return toVariant(value as unknown as Typed);
  if (sig.startsWith('a{')) {
    const valueSig = sig.slice(3, -1);
    const out: Record<string, WireValue> = {};
    for (const [k, v] of Object.entries(value as Record<string, TypedValue>)) {
      out[k] = toWire(valueSig, v);
    }
    return out;
  }
  if (sig.startsWith('a') && sig !== 'ay') {
    return (value as readonly TypedValue[]).map((v) => toWire(sig.slice(1), v));
  }
  return value as WireValue;
}

/** Unwrap an incoming `a{sv}` into plain values (numbers, bigints, Buffers, strings, ...). */
export function unwrapDict(dict: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (dict === null || typeof dict !== 'object') return out;
  for (const [k, v] of Object.entries(dict as Record<string, unknown>)) out[k] = unwrap(v);
  return out;
}

function unwrap(v: unknown): unknown {
  if (v instanceof Variant) return unwrap(v.value);
  if (Array.isArray(v)) return v.map(unwrap);
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) return unwrapDict(v);
  return v;
}
