/** Errors a well-behaved daemon may answer a fuzzed call with; anything else means trouble. */
export const ALLOWED_ERRORS: ReadonlySet<string> = new Set([
  ...[
    'InvalidArgument',
    'NotFound',
    'AccessDenied',
    'LimitExceeded',
    'Cancelled',
    'Failed',
    'NotSupported',
    'Busy',
  ].map((n) => `org.vigil.Vigil1.Error.${n}`),
  ...[
    'UnknownMethod',
    'UnknownInterface',
    'UnknownObject',
    'UnknownProperty',
    'InvalidArgs',
    'PropertyReadOnly',
  ].map((n) => `org.freedesktop.DBus.Error.${n}`),
]);
