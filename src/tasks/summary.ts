import { splitSignature, splitStruct, typed, type Typed, type TypedDict } from '../core/typed';
import type { TypedValue } from '../core/typed';

/**
 * The most a task's result may take wherever everybody sees it: the Task object's `Result`
 * (its property, PropertiesChanged, the `Finished` signal, GetManagedObjects), history
 * summaries and what a non-owner's `Wait`/`GetTask` answers. The full result is for the
 * owner and root, from `Wait` and `GetTask`. Bounded results keep every reply that lists
 * tasks inside the bus's 32 MiB message limit.
 */
export const SMALL_RESULT_BYTES = 4096;

/** The result key that names the entries left out of a small result. */
export const OMITTED_KEY = 'omitted';

/** Room kept for the `omitted` list itself. */
const OMITTED_RESERVE = 512;

/**
 * An upper bound of the marshalled size of one value of signature `sig` (alignment padding
 * counted at its worst), so a result can be measured without marshalling it.
 */
export function wireBytes(sig: string, value: TypedValue): number {
  switch (sig[0]) {
    case 'y':
      return 1;
    case 'n':
    case 'q':
      return 2 + 1;
    case 'b':
    case 'i':
    case 'u':
    case 'h':
      return 4 + 3;
    case 'x':
    case 't':
    case 'd':
      return 8 + 7;
    case 's':
    case 'o':
      return 4 + 3 + Buffer.byteLength(String(value)) + 1;
    case 'g':
      return 1 + Buffer.byteLength(String(value)) + 1;
    case 'v': {
      const inner = value as unknown as Typed;
      return 1 + inner.sig.length + 1 + wireBytes(inner.sig, inner.value);
    }
    case '(': {
      const parts = splitStruct(sig);
      const items = value as readonly TypedValue[];
      return 7 + parts.reduce((n, part, i) => n + wireBytes(part, items[i] as TypedValue), 0);
    }
    case 'a':
      return 4 + 7 + arrayBytes(sig.slice(1), value);
    default:
      return 8;
  }
}

function arrayBytes(elem: string, value: TypedValue): number {
  if (elem === 'y') return (value as Buffer).length;
  if (elem.startsWith('{')) {
    const [keySig, valueSig] = splitSignature(elem.slice(1, -1));
    let n = 0;
    for (const [k, v] of Object.entries(value as Record<string, TypedValue>)) {
      n += 7 + wireBytes(keySig, k) + wireBytes(valueSig, v);
    }
    return n;
  }
  let n = 0;
  for (const v of value as readonly TypedValue[]) n += wireBytes(elem, v);
  return n;
}

/** Marshalled size bound of one `a{sv}` entry. */
function entryBytes(key: string, value: Typed): number {
  return 7 + wireBytes('s', key) + wireBytes('v', value as unknown as TypedValue);
}

export function resultBytes(result: TypedDict): number {
  let n = 4 + 7;
  for (const [k, v] of Object.entries(result)) n += entryBytes(k, v);
  return n;
}

/**
 * The result as everybody may see it: entries in order while they fit in `budget` bytes; the
 * names of those left out are listed under `omitted` (ask `Wait` or `GetTask` as the owner for
 * them). A result that fits is returned as it is.
 */
export function smallResult(result: TypedDict, budget = SMALL_RESULT_BYTES): TypedDict {
  if (resultBytes(result) <= budget) return result;
  const out: TypedDict = {};
  const omitted: string[] = [];
  let used = 4 + 7;
  for (const [k, v] of Object.entries(result)) {
    const size = entryBytes(k, v);
    if (k !== OMITTED_KEY && used + size <= budget - OMITTED_RESERVE) {
      out[k] = v;
      used += size;
    } else {
      omitted.push(k.slice(0, 64));
    }
  }
  // Kind results have a handful of short names; a list too long to fit is cut.
  let listBytes = 0;
  const listed = omitted.filter((k) => (listBytes += k.length + 8) < OMITTED_RESERVE - 64);
  out[OMITTED_KEY] = typed.as(listed);
  return out;
}
