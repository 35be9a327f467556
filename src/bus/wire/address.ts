/**
 * D-Bus server addresses (`unix:path=/run/dbus/system_bus_socket`, `unix:abstract=/tmp/x`,
 * `tcp:host=127.0.0.1,port=4711`, several separated by `;`, tried in order), parsed with the
 * specification's `%xx` escapes. Anything else is an AddressError whose message is one line
 * saying what is wrong with which address.
 */

export class AddressError extends Error {}

export type SocketTarget =
  | { kind: 'unix'; path: string }
  | { kind: 'abstract'; name: string }
  | { kind: 'tcp'; host: string; port: number; family?: 4 | 6 };

export const DEFAULT_SYSTEM_BUS_ADDRESS = 'unix:path=/var/run/dbus/system_bus_socket';

const EXAMPLE = 'e.g. unix:path=/run/dbus/system_bus_socket';

/** Parse an address string into the sockets to try, in order. */
export function parseAddress(address: string): SocketTarget[] {
  const shown = JSON.stringify(address.length > 120 ? address.slice(0, 117) + '...' : address);
  const bad = (why: string): never => {
    throw new AddressError(`invalid D-Bus address ${shown}: ${why}`);
  };
  const targets: SocketTarget[] = [];
  for (const part of address.split(';')) {
    if (part === '') continue;
    const colon = part.indexOf(':');
    if (colon <= 0) bad(`no transport before ":" (${EXAMPLE})`);
    const transport = part.slice(0, colon);
    const keys = new Map<string, string>();
    const rest = part.slice(colon + 1);
    for (const pair of rest === '' ? [] : rest.split(',')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) bad(`"${pair.slice(0, 40)}" is not key=value`);
      const key = pair.slice(0, eq);
      if (keys.has(key)) bad(`key "${key}" given twice`);
      keys.set(key, unescape(pair.slice(eq + 1), bad));
    }
    targets.push(target(transport, keys, bad));
  }
  if (targets.length === 0) bad(`empty (${EXAMPLE})`);
  return targets;
}

function target(
  transport: string,
  keys: Map<string, string>,
  bad: (why: string) => never,
): SocketTarget {
  if (transport === 'unix') {
    const path = keys.get('path');
    const abstract = keys.get('abstract');
    if (path !== undefined && abstract !== undefined) bad('both path= and abstract=');
    if (path !== undefined) {
      if (path === '') bad('empty path=');
      return { kind: 'unix', path };
    }
    if (abstract !== undefined) return { kind: 'abstract', name: abstract };
    for (const listenOnly of ['tmpdir', 'dir', 'runtime']) {
      if (keys.has(listenOnly))
        bad(`${listenOnly}= is for servers to listen on, not to connect to`);
    }
    return bad('unix: needs path= or abstract=');
  }
  if (transport === 'tcp') {
    const host = keys.get('host') ?? 'localhost';
    const portText = keys.get('port');
    if (portText === undefined) bad('tcp: needs port=');
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535)
      bad(`port "${portText}" is not 1–65535`);
    const family = keys.get('family');
    if (family !== undefined && family !== 'ipv4' && family !== 'ipv6') {
      bad(`family "${family}" is neither ipv4 nor ipv6`);
    }
    return { kind: 'tcp', host, port, family: family === 'ipv6' ? 6 : family ? 4 : undefined };
  }
  return bad(`transport "${transport.slice(0, 40)}" is not supported (unix or tcp)`);
}

/** Undo `%xx` escapes; a value is bytes, taken as UTF-8. */
function unescape(value: string, bad: (why: string) => never): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) bad(`bad escape "%${hex}"`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      for (const b of Buffer.from(c, 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
