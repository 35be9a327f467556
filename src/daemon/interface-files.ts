/**
 * `node dist/src/daemon/interface-files.js [--check] [DIR]` (scripts/gen-introspection runs it):
 * write, or check, services/<interface>.xml for every table of every capability. It reads the
 * tables alone; no capability is set up and nothing native is loaded.
 */
import path from 'node:path';
import type { InterfaceSpec } from '../bus/interface';
import { syncInterfaceFiles } from '../bus/introspection-files';
import { CAPABILITIES } from './capabilities';

/** Every interface of the contract whose introspection XML ships in services/. */
export const SHIPPED_INTERFACES: readonly InterfaceSpec<never>[] = CAPABILITIES.flatMap(
  (c) => c.interfaces,
);

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const dir = argv.find((a) => !a.startsWith('--')) ?? 'services';
  const changed = syncInterfaceFiles(dir, check, SHIPPED_INTERFACES);
  if (check) {
    for (const name of changed) console.error(`${path.join(dir, name)} is out of date`);
    if (changed.length > 0) console.error('run scripts/gen-introspection to regenerate');
    return changed.length > 0 ? 1 : 0;
  }
  for (const name of changed) console.log(`wrote ${path.join(dir, name)}`);
  console.log(`${SHIPPED_INTERFACES.length} interface files in ${dir} are up to date`);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
