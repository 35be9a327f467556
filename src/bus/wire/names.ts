import { memoize } from './intern';

/**
 * The syntax of D-Bus names and object paths, as the specification defines them. The checks
 * are remembered per string: the same few names come with almost every message.
 */

const OBJECT_PATH = /^\/$|^(?:\/[A-Za-z0-9_]+)+$/;
const MEMBER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const INTERFACE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/;
const WELL_KNOWN_BUS_NAME = /^[A-Za-z_-][A-Za-z0-9_-]*(?:\.[A-Za-z_-][A-Za-z0-9_-]*)+$/;
const UNIQUE_BUS_NAME = /^:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+$/;

/** Names of every kind are at most 255 bytes (they are ASCII, so characters). */
const MAX_NAME = 255;

export const isObjectPath = memoize((s) => OBJECT_PATH.test(s));

export const isMemberName = memoize((s) => s.length <= MAX_NAME && MEMBER.test(s));

export const isInterfaceName = memoize((s) => s.length <= MAX_NAME && INTERFACE.test(s));

/** Error names have the syntax of interface names. */
export const isErrorName = isInterfaceName;

export const isBusName = memoize(
  (s) =>
    s.length <= MAX_NAME &&
    (s.startsWith(':') ? UNIQUE_BUS_NAME.test(s) : WELL_KNOWN_BUS_NAME.test(s)),
);
