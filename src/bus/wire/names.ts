/** The syntax of D-Bus names and object paths, as the specification defines them. */

const OBJECT_PATH = /^\/$|^(?:\/[A-Za-z0-9_]+)+$/;
const MEMBER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const INTERFACE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/;
const WELL_KNOWN_BUS_NAME = /^[A-Za-z_-][A-Za-z0-9_-]*(?:\.[A-Za-z_-][A-Za-z0-9_-]*)+$/;
const UNIQUE_BUS_NAME = /^:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+$/;

/** Names of every kind are at most 255 bytes (they are ASCII, so characters). */
const MAX_NAME = 255;

export function isObjectPath(s: string): boolean {
  return OBJECT_PATH.test(s);
}

export function isMemberName(s: string): boolean {
  return s.length <= MAX_NAME && MEMBER.test(s);
}

export function isInterfaceName(s: string): boolean {
  return s.length <= MAX_NAME && INTERFACE.test(s);
}

/** Error names have the syntax of interface names. */
export const isErrorName = isInterfaceName;

export function isBusName(s: string): boolean {
  return (
    s.length <= MAX_NAME &&
    (s.startsWith(':') ? UNIQUE_BUS_NAME.test(s) : WELL_KNOWN_BUS_NAME.test(s))
  );
}
