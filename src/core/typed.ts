/**
 * Values that carry their D-Bus signature, so the logic can build `a{sv}` results without
 * depending on the bus library, and the history store can persist and restore them exactly.
 */
export type TypedValue =
  | string
  | number
  | bigint
  | boolean
  | Buffer
  | readonly TypedValue[]
  | { readonly [key: string]: TypedValue };

export interface Typed {
  readonly sig: string;
  readonly value: TypedValue;
}

export type TypedDict = Record<string, Typed>;

export const typed = {
  s: (value: string): Typed => ({ sig: 's', value }),
  o: (value: string): Typed => ({ sig: 'o', value }),
  b: (value: boolean): Typed => ({ sig: 'b', value }),
  u: (value: number): Typed => ({ sig: 'u', value }),
  i: (value: number): Typed => ({ sig: 'i', value }),
  t: (value: bigint | number): Typed => ({ sig: 't', value: BigInt(value) }),
  d: (value: number): Typed => ({ sig: 'd', value }),
  ay: (value: Buffer): Typed => ({ sig: 'ay', value }),
  aay: (value: readonly Buffer[]): Typed => ({ sig: 'aay', value }),
  as: (value: readonly string[]): Typed => ({ sig: 'as', value }),
  /** A free-form record: any signature, e.g. `a(uay)` for a list of (nonce, hash). */
  of: (sig: string, value: TypedValue): Typed => ({ sig, value }),
};

/** Encode for JSON storage: bigints and byte arrays become strings, guided by the signature. */
export function toJson(sig: string, value: TypedValue): unknown {
  if (sig === 't' || sig === 'x') return String(value);
  if (sig === 'ay') return (value as Buffer).toString('hex');
  if (sig.startsWith('a{')) {
    const valueSig = sig.slice(3, -1);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, TypedValue>)) {
      out[k] = valueSig === 'v' ? encodeTyped(v as unknown as Typed) : toJson(valueSig, v);
    }
    return out;
  }
  if (sig.startsWith('a')) {
    const elem = sig.slice(1);
    return (value as readonly TypedValue[]).map((v) => toJson(elem, v));
  }
  if (sig.startsWith('(')) {
    const parts = splitStruct(sig);
    return (value as readonly TypedValue[]).map((v, i) => toJson(parts[i] ?? 'v', v));
  }
  return value;
}

export function fromJson(sig: string, json: unknown): TypedValue {
  if (sig === 't' || sig === 'x') return BigInt(json as string);
  if (sig === 'ay') return Buffer.from(json as string, 'hex');
  if (sig.startsWith('a{')) {
    const valueSig = sig.slice(3, -1);
    const out: Record<string, TypedValue> = {};
    for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
      out[k] = valueSig === 'v' ? (decodeTyped(v) as unknown as TypedValue) : fromJson(valueSig, v);
    }
    return out;
  }
  if (sig.startsWith('a')) return (json as unknown[]).map((v) => fromJson(sig.slice(1), v));
  if (sig.startsWith('(')) {
    const parts = splitStruct(sig);
    return (json as unknown[]).map((v, i) => fromJson(parts[i] ?? 'v', v));
  }
  return json as TypedValue;
}

export function encodeTyped(t: Typed): unknown {
  return { sig: t.sig, value: toJson(t.sig, t.value) };
}

export function decodeTyped(json: unknown): Typed {
  const { sig, value } = json as { sig: string; value: unknown };
  return { sig, value: fromJson(sig, value) };
}

export function encodeDict(d: TypedDict): string {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) out[k] = encodeTyped(v);
  return JSON.stringify(out);
}

export function decodeDict(text: string | null | undefined): TypedDict {
  if (!text) return {};
  const out: TypedDict = {};
  for (const [k, v] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
    out[k] = decodeTyped(v);
  }
  return out;
}

/** Split the members of a struct signature `(uay)` into `['u', 'ay']`. */
export function splitStruct(sig: string): string[] {
  return splitSignature(sig.slice(1, -1));
}

/** Split a signature into its complete types: `sa{sv}ay` → `['s', 'a{sv}', 'ay']`. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < sig.length) {
    const start = i;
    i = skipType(sig, i);
    out.push(sig.slice(start, i));
  }
  return out;
}

function skipType(sig: string, i: number): number {
  const c = sig[i];
  if (c === 'a') return skipType(sig, i + 1);
  if (c === '(' || c === '{') {
    const close = c === '(' ? ')' : '}';
    i++;
    while (sig[i] !== close) {
      if (i >= sig.length) throw new Error(`unterminated signature: ${sig}`);
      i = skipType(sig, i);
    }
    return i + 1;
  }
  return i + 1;
}
