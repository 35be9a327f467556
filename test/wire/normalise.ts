import { parseSignature, parseSingleType, type TypeNode } from '../../src/bus/wire/signature';
import { Variant } from '../../src/bus/wire/variant';

/**
 * A decoded value in the shape glib_blobs.py prints GLib's: 64-bit integers as decimal strings,
 * byte arrays as {bytes: hex}, structures as {struct}, dicts as {dict: [[k, v]]} with keys in
 * their own type, variants as {v: signature, value}.
 */
export function normalise(t: TypeNode, v: unknown): unknown {
  switch (t.code) {
    case 'x':
    case 't':
      return String(v);
    case 'v': {
      const variant = v as Variant;
      return {
        v: variant.signature,
        value: normalise(parseSingleType(variant.signature), variant.value),
      };
    }
    case '(':
      return { struct: t.fields.map((f, i) => normalise(f, (v as unknown[])[i])) };
    case 'a': {
      const elem = t.elem;
      if (elem.code === 'y') return { bytes: Buffer.from(v as Uint8Array).toString('hex') };
      if (elem.code === '{') {
        const entries =
          v instanceof Map
            ? [...(v as Map<unknown, unknown>).entries()]
            : Object.entries(v as Record<string, unknown>).map(([k, x]) => [
                keyValue(elem.key, k),
                x,
              ]);
        // Sorted by key (as glib_blobs.py sorts): a JavaScript object orders integer keys itself.
        const dict = entries.map(([k, x]) => [normalise(elem.key, k), normalise(elem.value, x)]);
        return { dict: dict.sort(byKey) };
      }
      return (v as unknown[]).map((x) => normalise(elem, x));
    }
    default:
      return v;
  }
}

function byKey(a: unknown[], b: unknown[]): number {
  const ka = JSON.stringify(a[0]);
  const kb = JSON.stringify(b[0]);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function keyValue(key: TypeNode, k: string): unknown {
  if (
    key.code === 's' ||
    key.code === 'o' ||
    key.code === 'g' ||
    key.code === 'x' ||
    key.code === 't'
  ) {
    return k;
  }
  if (key.code === 'b') return k === 'true';
  return Number(k);
}

export function normaliseBody(signature: string, body: readonly unknown[]): unknown[] {
  return parseSignature(signature).map((t, i) => normalise(t, body[i]));
}
