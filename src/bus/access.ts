import { VigilError } from '../core/errors';
import { log } from '../core/log';
import { type Caller, PRIVILEGED_GROUP } from './caller';
import type { Binding, MethodSpec } from './interface';

/**
 * Enforce a method row's access value before its handler runs (and before its arguments are
 * decoded); refusals are logged with the caller's UID, so an administrator can see who tried what.
 */
export async function authorize(
  binding: Binding,
  method: MethodSpec<unknown>,
  caller: Caller,
): Promise<void> {
  if (method.access === 'anyone') return;
  const member = `${binding.spec.name}.${method.name}`;
  if (method.access === 'privileged') {
    if (await caller.privileged()) return;
    const uid = await caller.uid();
    log.warning(`access denied: uid ${uid} (${caller.sender}) may not call ${member}`);
    throw new VigilError(
      'AccessDenied',
      `${member} needs root or membership of the ${PRIVILEGED_GROUP} group`,
    );
  }
  const uid = await caller.uid();
  const owner = binding.spec.owner?.(binding.target);
  if (uid === 0 || uid === owner) return;
  const what = binding.spec.describe?.(binding.target) ?? 'this object';
  log.warning(
    `access denied: uid ${uid} may not ${method.name.toLowerCase()} ${what} of uid ${owner ?? '?'}`,
  );
  throw new VigilError(
    'AccessDenied',
    `only the owner (uid ${owner ?? '?'}) or root may call ${method.name} on ${what}`,
  );
}
