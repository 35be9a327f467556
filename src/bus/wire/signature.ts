/**
 * D-Bus type signatures: parsed into trees once, validated against the specification's
 * limits (255 bytes, 32 nested arrays, 32 nested structures or dict entries, dict entries only
 * as array elements with a basic key, no empty structures).
 */

export type BasicCode = 'y' | 'b' | 'n' | 'q' | 'i' | 'u' | 'x' | 't' | 'd' | 'h' | 's' | 'o' | 'g';

/**
 * One complete type. `depth` is how many containers (arrays, structures, dict entries, the
 * variant itself) the deepest value of this type can sit in, counted from the type's own level:
 * readers add it to their nesting count to keep within the specification's 64 in all.
 */
export type TypeNode =
  | { readonly code: BasicCode; readonly align: number; readonly sig: string; readonly depth: 0 }
  | { readonly code: 'v'; readonly align: 1; readonly sig: 'v'; readonly depth: 1 }
  | {
      readonly code: 'a';
      readonly align: 4;
      readonly sig: string;
      readonly depth: number;
      readonly elem: TypeNode;
    }
  | {
      readonly code: '(';
      readonly align: 8;
      readonly sig: string;
      readonly depth: number;
      readonly fields: readonly TypeNode[];
    }
  | {
      readonly code: '{';
      readonly align: 8;
      readonly sig: string;
      readonly depth: number;
      readonly key: TypeNode;
      readonly value: TypeNode;
    };

/** The specification's limit on containers around any value, variants included. */
export const MAX_TOTAL_DEPTH = 64;

export class SignatureError extends Error {}

export const MAX_SIGNATURE_LENGTH = 255;
export const MAX_ARRAY_DEPTH = 32;
export const MAX_STRUCT_DEPTH = 32;

/** Wire alignment and, for fixed-size types, size in bytes. */
const BASIC: Record<BasicCode, { align: number; size: number | undefined }> = {
  y: { align: 1, size: 1 },
  b: { align: 4, size: 4 },
  n: { align: 2, size: 2 },
  q: { align: 2, size: 2 },
  i: { align: 4, size: 4 },
  u: { align: 4, size: 4 },
  h: { align: 4, size: 4 },
  x: { align: 8, size: 8 },
  t: { align: 8, size: 8 },
  d: { align: 8, size: 8 },
  s: { align: 4, size: undefined },
  o: { align: 4, size: undefined },
  g: { align: 1, size: undefined },
};

export function isBasicCode(c: string): c is BasicCode {
  return Object.prototype.hasOwnProperty.call(BASIC, c);
}

/** One node per basic code, shared by every tree (they are immutable). */
const BASIC_NODES = new Map<string, TypeNode>(
  Object.entries(BASIC).map(([code, { align }]) => [
    code,
    { code: code as BasicCode, align, sig: code, depth: 0 },
  ]),
);
const VARIANT_NODE: TypeNode = { code: 'v', align: 1, sig: 'v', depth: 1 };

/** A small cache: hostile peers can send many distinct signatures, so it is cleared when full. */
const CACHE_LIMIT = 2048;
const cache = new Map<string, readonly TypeNode[]>();

/** Parse a signature (any number of complete types) into trees; throws SignatureError. */
export function parseSignature(sig: string): readonly TypeNode[] {
  const hit = cache.get(sig);
  if (hit) return hit;
  const types = parseUncached(sig);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(sig, types);
  return types;
}

/** Parse a signature that must be exactly one complete type (a variant's, for instance). */
export function parseSingleType(sig: string): TypeNode {
  const types = parseSignature(sig);
  if (types.length !== 1) {
    throw new SignatureError(`"${sig}" is not a single complete type`);
  }
  return types[0];
}

function parseUncached(sig: string): TypeNode[] {
  if (sig.length > MAX_SIGNATURE_LENGTH) {
    throw new SignatureError(`signature longer than ${MAX_SIGNATURE_LENGTH} characters`);
  }
  let pos = 0;
  const one = (arrays: number, structs: number): TypeNode => {
    const start = pos;
    const c = sig[pos++];
    if (c === undefined) throw new SignatureError(`signature "${sig}" ends inside a type`);
    const basic = BASIC_NODES.get(c);
    if (basic) return basic;
    if (c === 'v') return VARIANT_NODE;
    if (c === 'a') {
      if (arrays + 1 > MAX_ARRAY_DEPTH) {
        throw new SignatureError(`signature nests more than ${MAX_ARRAY_DEPTH} arrays`);
      }
      if (sig[pos] === '{') {
        pos++;
        if (structs + 1 > MAX_STRUCT_DEPTH) {
          throw new SignatureError(`signature nests more than ${MAX_STRUCT_DEPTH} structures`);
        }
        const keyCode = sig[pos];
        const key = keyCode === undefined ? undefined : BASIC_NODES.get(keyCode);
        if (!key) throw new SignatureError(`dict entry key in "${sig}" is not a basic type`);
        pos++;
        const value = one(arrays + 1, structs + 1);
        if (sig[pos] !== '}') {
          throw new SignatureError(`dict entry in "${sig}" must hold exactly a key and a value`);
        }
        pos++;
        const entry: TypeNode = {
          code: '{',
          align: 8,
          sig: sig.slice(start + 1, pos),
          depth: 1 + value.depth,
          key,
          value,
        };
        return {
          code: 'a',
          align: 4,
          sig: sig.slice(start, pos),
          depth: 2 + value.depth,
          elem: entry,
        };
      }
      const elem = one(arrays + 1, structs);
      return { code: 'a', align: 4, sig: sig.slice(start, pos), depth: 1 + elem.depth, elem };
    }
    if (c === '(') {
      if (structs + 1 > MAX_STRUCT_DEPTH) {
        throw new SignatureError(`signature nests more than ${MAX_STRUCT_DEPTH} structures`);
      }
      const fields: TypeNode[] = [];
      while (sig[pos] !== ')') {
        if (pos >= sig.length) throw new SignatureError(`unclosed structure in "${sig}"`);
        fields.push(one(arrays, structs + 1));
      }
      pos++;
      if (fields.length === 0) throw new SignatureError(`empty structure in "${sig}"`);
      const depth = 1 + Math.max(...fields.map((f) => f.depth));
      return { code: '(', align: 8, sig: sig.slice(start, pos), depth, fields };
    }
    if (c === '{') throw new SignatureError(`dict entry outside an array in "${sig}"`);
    throw new SignatureError(`invalid type code ${JSON.stringify(c)} in signature`);
  };
  const out: TypeNode[] = [];
  while (pos < sig.length) out.push(one(0, 0));
  return out;
}

/** Whether `sig` is a valid signature (for `g` values and the SIGNATURE header field). */
export function isValidSignature(sig: string): boolean {
  try {
    parseSignature(sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * The exact size in bytes of a body of `types` when every one is of fixed size (no strings,
 * arrays or variants), else undefined. Bodies start 8-aligned, so padding is the same for
 * every message.
 */
export function fixedBodySize(types: readonly TypeNode[]): number | undefined {
  let offset = 0;
  const add = (t: TypeNode): boolean => {
    if (t.code === '(') {
      offset = alignUp(offset, 8);
      return t.fields.every(add);
    }
    if (t.code === 'a' || t.code === 'v' || t.code === '{') return false;
    const size = BASIC[t.code].size;
    if (size === undefined) return false;
    offset = alignUp(offset, t.align) + size;
    return true;
  };
  return types.every(add) ? offset : undefined;
}

export function alignUp(n: number, to: number): number {
  return (n + to - 1) & ~(to - 1);
}
