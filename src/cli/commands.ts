import type { CliCommand } from './command';
import { coreCommands } from './core-commands';
import { commands as randomxCommands } from './randomx';
import { reloadCommand } from './reload';
import { watchCommand } from './watch';
import { commands as wolCommands } from './wol';

/**
 * Every vigilctl subcommand, in the order `vigilctl --help` lists them. A capability module
 * exports `commands: CliCommand[]` (see src/cli/command.ts) and is listed here.
 */
export const commands: CliCommand[] = [
  ...coreCommands,
  reloadCommand,
  watchCommand,
  ...randomxCommands,
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
