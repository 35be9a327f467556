/** Error names of the D-Bus contract; each maps to `org.vigil.Vigil1.Error.<Name>`. */
export type ErrorName =
  | 'InvalidArgument'
  | 'NotFound'
  | 'AccessDenied'
  | 'LimitExceeded'
  | 'Cancelled'
  | 'Failed'
  | 'NotSupported'
  | 'Busy';

export const ERROR_PREFIX = 'org.vigil.Vigil1.Error.';

/**
 * The one error type the logic throws. The bus layer turns it into a D-Bus error reply;
 * anything else that escapes a handler becomes `Failed` and is logged as a bug.
 */
export class VigilError extends Error {
  constructor(
    readonly code: ErrorName,
    message: string,
  ) {
    super(message);
    this.name = ERROR_PREFIX + code;
  }

  get dbusName(): string {
    return ERROR_PREFIX + this.code;
  }
}

export const invalidArgument = (message: string): VigilError =>
  new VigilError('InvalidArgument', message);

export function isVigilError(e: unknown): e is VigilError {
  return e instanceof VigilError;
}

/** The human message of any thrown value, for logs and Failed replies. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
