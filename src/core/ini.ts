import { invalidArgument } from './errors';

/** One `[section]` of an INI file, keys lower-cased, in file order. */
export interface IniSection {
  readonly name: string;
  readonly values: ReadonlyMap<string, string>;
  readonly line: number;
}

/**
 * Parse the INI dialect of Python's configparser that wakeupd's config uses:
 * `[section]`, `key = value` or `key: value`, `#`/`;` comments, indented continuation lines.
 */
export function parseIni(text: string, source = 'config'): IniSection[] {
  const sections: IniSection[] = [];
  let current: { name: string; values: Map<string, string>; line: number } | undefined;
  let lastKey: string | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    if (/^\s/.test(raw) && current && lastKey !== undefined) {
      current.values.set(lastKey, `${current.values.get(lastKey) ?? ''}\n${trimmed}`);
      return;
    }
    const header = /^\[([^\]]+)\]$/.exec(trimmed);
    if (header) {
      current = { name: header[1].trim(), values: new Map(), line: lineNo };
      sections.push(current);
      lastKey = undefined;
      return;
    }
    // configparser would read `[host:x` (no `]`) as the key `[host`; a typo'd header must not
    // quietly become a setting of the section before it.
    if (trimmed.startsWith('[')) {
      throw invalidArgument(`${source}:${lineNo}: section header without "]": "${trimmed}"`);
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(trimmed);
    if (!kv || !current) {
      throw invalidArgument(`${source}:${lineNo}: cannot parse "${trimmed}"`);
    }
    lastKey = kv[1].toLowerCase();
    current.values.set(lastKey, kv[2]);
  });
  return sections;
}
