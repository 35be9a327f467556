import fs from 'node:fs';
import path from 'node:path';
import { type InterfaceSpec, interfaceXml, XML_DOCTYPE } from './interface';

/** The text of services/<name>.xml: one `<node>` holding the one interface. */
export function interfaceFileText(spec: InterfaceSpec<never>): string {
  return `${XML_DOCTYPE}\n<node>\n${interfaceXml(spec as InterfaceSpec<unknown>)}\n</node>\n`;
}

export function interfaceFileName(spec: InterfaceSpec<never>): string {
  return `${spec.name}.xml`;
}

/**
 * Write (or with `check`, compare) one file per interface of `specs` in `dir`; returns the
 * names of the files that were written (or that differ).
 */
export function syncInterfaceFiles(
  dir: string,
  check: boolean,
  specs: readonly InterfaceSpec<never>[],
): string[] {
  const changed: string[] = [];
  for (const spec of specs) {
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
