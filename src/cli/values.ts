import { Variant } from '../bus/values';

/**
 * What vigilctl gets back from the bus once Variants are stripped: strings, numbers, bigints
 * (`t`, `x`), booleans, Buffers (`ay`), arrays and dicts of them.
 */
export type BusValue =
  string | number | bigint | boolean | Buffer | BusValue[] | { [key: string]: BusValue };

/** A value as JSON.stringify can print it. */
export type JsonValue =
  null | string | number | boolean | JsonValue[] | { [key: string]: JsonValue };

/** Strip Variants recursively; Buffers and bigints are kept as they are. */
export function unwrap(v: unknown): BusValue {
  if (v instanceof Variant) return unwrap(v.value);
  if (Array.isArray(v)) return v.map(unwrap);
  if (Buffer.isBuffer(v)) return v;
  if (v !== null && typeof v === 'object') {
    const out: { [key: string]: BusValue } = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = unwrap(x);
    return out;
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') return v;
  if (typeof v === 'boolean') return v;
  return String(v);
}

/** An unwrapped `a{sv}` as a record. */
export function unwrapDict(v: unknown): Record<string, BusValue> {
  const u = unwrap(v);
  if (u === null || typeof u !== 'object' || Array.isArray(u) || Buffer.isBuffer(u)) return {};
  return u;
}

/**
 * The JSON form of a bus value: byte arrays become lower-case hex strings, and 64-bit integers
 * become numbers when they are exactly representable (|n| < 2^53) and decimal strings otherwise.
 */
export function toJson(v: unknown): JsonValue {
  if (v instanceof Variant) return toJson(v.value);
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (typeof v === 'bigint') {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(v)
      : v.toString(10);
  }
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    const out: { [key: string]: JsonValue } = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = toJson(x);
    return out;
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  return v === undefined || v === null ? null : String(v);
}

/** A number from a bus value that may be a bigint (`t`) or a number. */
export function num(v: unknown, fallback = 0): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return fallback;
}

export function str(v: unknown, fallback = ''): string {
  return typeof v === 'string' ? v : fallback;
}

/** A one-line human rendering of a bus value: hex for bytes, `k=v` lists for dicts. */
export function formatValue(v: unknown): string {
  if (v instanceof Variant) return formatValue(v.value);
  if (Buffer.isBuffer(v)) return v.length === 0 ? '(empty)' : v.toString('hex');
  if (typeof v === 'bigint') return v.toString(10);
  if (Array.isArray(v)) return `[${v.map(formatValue).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${k}=${formatValue(x)}`)
      .join(' ');
  }
  return String(v);
}

/** A D-Bus time (`t`, microseconds since the epoch, 0 = unknown) as local ISO-like text. */
export function formatTime(usec: unknown): string {
  const us = num(usec);
  if (us <= 0) return '-';
  const d = new Date(us / 1000);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** A duration in seconds as `1h02m`, `3m05s`, `4.2s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** A count, exact up to 99999 (integers), then with an SI prefix: 950, 12345, 123k, 4.56M. */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  if (Number.isInteger(n) && abs < 100000) return String(n);
  if (abs < 1000) return n.toFixed(abs < 10 ? 2 : 1);
  const units = ['k', 'M', 'G', 'T', 'P'];
  let v = n;
  let i = -1;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0)}${units[i]}`;
}

/** Align rows into columns separated by two spaces (the last column is not padded). */
export function formatTable(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}
