/** Names of the D-Bus contract (DESIGN.md, version 1). */
export const BUS_NAME = 'org.vigil.Vigil1';
export const ROOT_PATH = '/org/vigil/Vigil1';
export const IFACE_PREFIX = 'org.vigil.Vigil1.';

/**
 * Escape a string into one object-path element the way systemd's bus_label_escape does:
 * every byte outside [A-Za-z0-9] becomes `_xx` (lower-case hex); the empty string is `_`.
 */
export function escapePathElement(s: string): string {
  if (s === '') return '_';
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9]/.test(c) ? c : '_' + byte.toString(16).padStart(2, '0');
  }
  return out;
}

export function unescapePathElement(e: string): string {
  if (e === '_') return '';
  const bytes: number[] = [];
  for (let i = 0; i < e.length; i++) {
    if (e[i] === '_' && /^[0-9a-f]{2}$/.test(e.slice(i + 1, i + 3))) {
      bytes.push(parseInt(e.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(e.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
