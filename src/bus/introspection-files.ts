import fs from 'node:fs';
import path from 'node:path';
import { daemonInterface } from '../daemon/daemon';
import { randomDataInterface } from '../randomdata/dbus';
import { randomXInterface } from '../randomx/dbus';
import { taskInterface, taskManagerInterface } from '../tasks/dbus';
import { hostInterface, wakeOnLanInterface } from '../wol/dbus';
import { type InterfaceSpec, interfaceXml, XML_DOCTYPE } from './interface';

/**
 * Every interface of the contract whose introspection XML ships in services/, one file each
 * (`<name>.xml`), generated from the same tables the daemon serves. A capability adds its
 * tables here: one import line and one entry below.
 */
export const SHIPPED_INTERFACES: readonly InterfaceSpec<never>[] = [
  daemonInterface,
  randomDataInterface,
  taskManagerInterface,
  taskInterface,
  randomXInterface,
  wakeOnLanInterface,
  hostInterface,
];

/** The text of services/<name>.xml: one `<node>` holding the one interface. */
export function interfaceFileText(spec: InterfaceSpec<never>): string {
  return `${XML_DOCTYPE}\n<node>\n${interfaceXml(spec as InterfaceSpec<unknown>)}\n</node>\n`;
}

export function interfaceFileName(spec: InterfaceSpec<never>): string {
  return `${spec.name}.xml`;
}

/**
 * Write (or with `check`, compare) every shipped file in `dir`; returns the names of the files
 * that were written (or that differ).
 */
export function syncInterfaceFiles(dir: string, check: boolean): string[] {
  const changed: string[] = [];
  for (const spec of SHIPPED_INTERFACES) {
    const file = path.join(dir, interfaceFileName(spec));
    const text = interfaceFileText(spec);
    let current: string | undefined;
    try {
      current = fs.readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === text) continue;
    changed.push(interfaceFileName(spec));
    if (!check) fs.writeFileSync(file, text);
  }
  return changed;
}

/** `node introspection-files.js [--check] [DIR]` (scripts/gen-introspection runs this). */
function main(argv: string[]): number {
  const check = argv.includes('--check');
  const dir = argv.find((a) => !a.startsWith('--')) ?? 'services';
  const changed = syncInterfaceFiles(dir, check);
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
