/**
 * Shell completion for vigilctl: `vigilctl __complete -- WORD...` (zsh) or
 * `vigilctl __complete --line LINE` (bash, the line up to the cursor) prints the candidates
 * for the last word, one per line (`--describe`: `word<TAB>summary`). Commands and options
 * come from the command registry and its usage lines, so completion cannot drift from what
 * vigilctl accepts; task ids and host names (also for `wakes --host`) come from the daemon
 * with a short timeout, and nothing at all is printed when it is not there. It never starts
 * the daemon: the lookups are sent with NO_AUTO_START, so bus activation stays for real calls.
 */
import { connectBus, type BusTarget } from '../bus/connection';
import { NO_AUTO_START } from '../bus/wire/message';
import { BUS_NAME, IFACE_PREFIX, ROOT_PATH, unescapePathElement } from '../bus/names';
import { chooseBus, TASK_MANAGER_IFACE, TASKS_PATH, type BusChoice } from './client';
import type { CliCommand } from './command';
import { commands, findCommand } from './commands';

export interface Candidate {
  readonly word: string;
  readonly description?: string;
}

/** Options vigilctl takes anywhere on the line (see splitGlobals), with what they say. */
const GLOBALS: readonly Candidate[] = [
  { word: '--session', description: 'use the session bus' },
  { word: '--system', description: 'use the system bus' },
  { word: '--bus', description: 'use the bus at ADDRESS' },
  { word: '--json', description: 'machine-readable output' },
  { word: '--help', description: 'show help' },
  { word: '--version', description: 'show the version' },
];

/** Live values for the first argument of these commands. */
export type LiveKind = 'tasks' | 'hosts';
export const LIVE_ARGUMENTS: Readonly<Record<string, LiveKind>> = {
  task: 'tasks',
  wait: 'tasks',
  cancel: 'tasks',
  pause: 'tasks',
  resume: 'tasks',
  wake: 'hosts',
  'hosts remove': 'hosts',
};

/** Live values for options that take one, by command and option. */
export const LIVE_OPTIONS: Readonly<Record<string, Readonly<Record<string, LiveKind>>>> = {
  wakes: { '--host': 'hosts' },
};

/** Where live values come from; the daemon's, or a test's. */
export type LiveLookup = (kind: LiveKind, bus: BusChoice) => Promise<string[]>;

/** A command's options as its usage and help spell them, and which of them take a value. */
export function commandOptions(c: CliCommand): Map<string, boolean> {
  const text = `${c.usage}\n${c.help ?? ''}`;
  const options = new Map<string, boolean>();
  for (const m of text.matchAll(/(--[a-z][a-z-]*)(?:[ =]([A-Z][A-Z_,.]*))?/g)) {
    options.set(m[1], (options.get(m[1]) ?? false) || m[2] !== undefined);
  }
  return options;
}

/** The positional arguments of a command, as its usage names them (`ID`, `NAME|MAC`, ...). */
function positionalCount(c: CliCommand, args: readonly string[]): number {
  const options = commandOptions(c);
  let count = 0;
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith('-')) {
      if (options.get(args[i]) === true) i++;
    } else count++;
  }
  return count;
}

const startsWith = (prefix: string) => (c: Candidate) => c.word.startsWith(prefix);

/** First words of every command (`random`, `tasks`, `hosts`, ...), with a summary. */
function firstWords(): Candidate[] {
  const seen = new Map<string, Candidate>();
  for (const c of commands) {
    const [first, second] = c.name.split(' ');
    if (!seen.has(first)) {
      seen.set(first, { word: first, description: second ? `${first} commands` : c.summary });
    } else if (!second) seen.set(first, { word: first, description: c.summary });
  }
  return [...seen.values(), { word: 'help', description: 'help on a command' }];
}

/** Second words after a group (`random` → quick, slow). */
function secondWords(group: string): Candidate[] {
  return commands
    .filter((c) => c.name.startsWith(`${group} `))
    .map((c) => ({ word: c.name.slice(group.length + 1), description: c.summary }));
}

/**
 * The candidates for the last of `words` (the words after `vigilctl`; the last one is being
 * completed and may be empty).
 */
export async function completions(
  words: readonly string[],
  live: LiveLookup,
): Promise<Candidate[]> {
  const current = words.length > 0 ? words[words.length - 1] : '';
  const before = words.slice(0, -1);
  const bus: BusChoice = {};
  const rest: string[] = [];
  for (let i = 0; i < before.length; i++) {
    const w = before[i];
    if (w === '--system') bus.system = true;
    else if (w === '--session') bus.session = true;
    else if (w === '--bus') bus.bus = before[++i];
    else if (w.startsWith('--bus=')) bus.bus = w.slice('--bus='.length);
    else if (!GLOBALS.some((g) => g.word === w) && w !== '-h') rest.push(w);
  }
  if (before[before.length - 1] === '--bus') return [];

  const found = rest[0] === 'help' ? undefined : findCommand(rest);
  if (current.startsWith('-')) {
    const own = found ? [...commandOptions(found.command).keys()].map((word) => ({ word })) : [];
    return [...own, ...GLOBALS].filter(startsWith(current));
  }
  if (!found) {
    const words = rest[0] === 'help' ? rest.slice(1) : rest;
    if (words.length === 0) return firstWords().filter(startsWith(current));
    if (words.length === 1) return secondWords(words[0]).filter(startsWith(current));
    return [];
  }
  const { command, args } = found;
  // A group's own command (`hosts`) also offers its subcommands (`hosts add`).
  if (args.length === 0 && rest.length === 1) {
    const sub = secondWords(command.name);
    if (sub.length > 0) return sub.filter(startsWith(current));
  }
  const liveWords = async (kind: LiveKind): Promise<Candidate[]> =>
    (await live(kind, bus)).map((word) => ({ word })).filter(startsWith(current));
  // The value of an option: live for some (`wakes --host`), the user's to type for the rest.
  const last = args[args.length - 1];
  if (last !== undefined && commandOptions(command).get(last) === true) {
    const kind = LIVE_OPTIONS[command.name]?.[last];
    return kind ? liveWords(kind) : [];
  }
  const kind = LIVE_ARGUMENTS[command.name];
  if (!kind || positionalCount(command, args) !== 0) return [];
  return liveWords(kind);
}

/** Split a shell line the way the shell would for plain words, quotes and backslashes. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else word = (word ?? '') + c;
  }
  // A line ending in a space is completing a new, empty word.
  words.push(word ?? '');
  return words;
}

/** Ask the daemon, without starting it: NO_AUTO_START, and a timeout on everything. */
async function daemonLookup(
  kind: LiveKind,
  choice: BusChoice,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<string[]> {
  const target: BusTarget = chooseBus(choice, env);
  const bus = await connectBus(target, timeoutMs);
  try {
    const call = async (path: string, iface: string, member: string): Promise<unknown[]> => {
      const reply = await bus.call(
        { destination: BUS_NAME, path, interface: iface, member, flags: NO_AUTO_START },
        { timeoutMs },
      );
      return reply.body;
    };
    if (kind === 'tasks') {
      const [paths] = (await call(TASKS_PATH, TASK_MANAGER_IFACE, 'ListTasks')) as string[][];
      return paths.map((p) => p.slice(TASKS_PATH.length + 1));
    }
    const [paths] = (await call(
      `${ROOT_PATH}/WakeOnLan`,
      `${IFACE_PREFIX}WakeOnLan`,
      'ListHosts',
    )) as string[][];
    return paths.map((p) => unescapePathElement(p.slice(p.lastIndexOf('/') + 1)));
  } finally {
    bus.close();
  }
}

/** `vigilctl __complete ...`: print the candidates; any failure prints nothing. */
export async function runComplete(
  argv: readonly string[],
  io: { stdout: NodeJS.WritableStream; env: NodeJS.ProcessEnv },
): Promise<number> {
  const describe = argv.includes('--describe');
  const lineAt = argv.indexOf('--line');
  const dashes = argv.indexOf('--');
  let words: string[];
  if (lineAt >= 0) words = shellWords(argv[lineAt + 1] ?? '').slice(1);
  else if (dashes >= 0) words = argv.slice(dashes + 1);
  else return 0;
  const timeoutMs = Number(io.env.VIGIL_COMPLETE_TIMEOUT_MS) || 500;
  const live: LiveLookup = (kind, bus) =>
    daemonLookup(kind, bus, io.env, timeoutMs).catch(() => []);
  const found = await completions(words, live).catch(() => []);
  const out = found.map((c) =>
    describe && c.description ? `${c.word}\t${c.description}` : c.word,
  );
  if (out.length > 0) io.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
