import type { CliCommand } from './command';
import { coreCommands } from './core-commands';
import { watchCommand } from './watch';
import { commands as wolCommands } from './wol';

/**
 * Commands of a capability module that may not be in this tree yet. A module such as
 * `./randomx` exports `commands: CliCommand[]`; once its file exists this becomes a static
 * import (as `./wol` already is). Only "that very module is missing" is tolerated: an error inside an existing
 * module is a bug and must surface.
 */
function optionalCommands(module: string): CliCommand[] {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(module) as { commands?: CliCommand[] };
    return loaded.commands ?? [];
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === 'MODULE_NOT_FOUND' && err.message?.includes(`'${module}'`)) return [];
    throw e;
  }
}

/** Every vigilctl subcommand, in the order `vigilctl --help` lists them. */
export const commands: CliCommand[] = [
  ...coreCommands,
  watchCommand,
  ...optionalCommands('./randomx'),
  ...wolCommands,
];

/**
 * The command a command line names: the longest registered name (one or two words) that
 * matches its first words. Returns the command and the remaining arguments.
 */
export function findCommand(
  words: string[],
  registry: CliCommand[] = commands,
): { command: CliCommand; args: string[] } | undefined {
  for (const n of [2, 1]) {
    if (words.length < n) continue;
    const name = words.slice(0, n).join(' ');
    const command = registry.find((c) => c.name === name);
    if (command) return { command, args: words.slice(n) };
  }
  return undefined;
}

/** Commands whose name starts with `group` (`random` → random quick, random slow). */
export function commandGroup(group: string, registry: CliCommand[] = commands): CliCommand[] {
  return registry.filter((c) => c.name.startsWith(group + ' '));
}
