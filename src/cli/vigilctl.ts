#!/usr/bin/env node
import { VERSION } from '../daemon/version';
import {
  BusUnavailableError,
  chooseBus,
  DBusCallError,
  isUnreachable,
  type BusChoice,
} from './client';
import { EXIT, InterruptedError, TaskEndedError, UsageError, type CliCommand } from './command';
import { commandGroup, commands, findCommand } from './commands';
import { runComplete } from './complete';
import { RunContext } from './context';

const GLOBAL_OPTIONS = `Global options (anywhere on the line):
  --session          use the session bus (the default)
  --system           use the system bus
  --bus ADDRESS      use the bus at ADDRESS, e.g. unix:path=/tmp/vigil-bus/bus
  --json             machine-readable JSON on stdout (64-bit integers as numbers, or as
                     strings beyond 2^53; byte arrays as hex); watch prints one object per line
  -h, --help         show help (of a command: vigilctl COMMAND --help)
  --version          show vigilctl's version

Environment:
  DBUS_SESSION_BUS_ADDRESS  the session bus
  VIGIL_BUS_ADDRESS         used when no bus option is given and there is no session bus
                            (the quick-start script prints it when it starts a private bus)

Progress of long tasks goes to stderr: bars on a terminal, plain lines otherwise.

Exit status:
  0    success
  1    vigil answered with a D-Bus error (printed as one line: NAME: message)
  2    bad usage
  3    vigil unreachable: no bus, connection lost, or org.vigil.Vigil1 not on the bus
  4    the task ended failed, cancelled or interrupted
  130  interrupted while waiting (the task keeps running)`;

/** Commands with their summaries in a column; a usage too long for it gets its own line. */
function commandList(registry: CliCommand[]): string[] {
  const column = Math.min(32, Math.max(...registry.map((c) => c.usage.length))) + 4;
  return registry.flatMap((c) =>
    c.usage.length + 4 <= column
      ? [`  ${c.usage.padEnd(column - 2)}${c.summary}`]
      : [`  ${c.usage}`, `${' '.repeat(column)}${c.summary}`],
  );
}

export function usage(registry: CliCommand[] = commands): string {
  return [
    'Usage: vigilctl [--session | --system | --bus ADDRESS] [--json] COMMAND [ARGS]',
    '',
    'Commands:',
    ...commandList(registry),
    '',
    GLOBAL_OPTIONS,
    '',
  ].join('\n');
}

function commandHelp(c: CliCommand): string {
  return [`Usage: vigilctl ${c.usage}`, '', c.summary, ...(c.help ? ['', c.help] : []), ''].join(
    '\n',
  );
}

interface Globals extends BusChoice {
  json?: boolean;
  help?: boolean;
  version?: boolean;
}

/**
 * Take the global options out of the command line, wherever they are (before `--`), and
 * leave the command words and its own options in order.
 */
export function splitGlobals(argv: string[]): { globals: Globals; rest: string[] } {
  const globals: Globals = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--session') globals.session = true;
    else if (a === '--system') globals.system = true;
    else if (a === '--json') globals.json = true;
    else if (a === '--help' || a === '-h') globals.help = true;
    else if (a === '--version') globals.version = true;
    else if (a === '--bus' || a.startsWith('--bus=')) {
      const value = a === '--bus' ? argv[++i] : a.slice('--bus='.length);
      if (value === undefined || value === '') throw new UsageError('--bus needs an ADDRESS');
      globals.bus = value;
    } else rest.push(a);
  }
  const chosen = [globals.session, globals.system, globals.bus !== undefined].filter(Boolean);
  if (chosen.length > 1) throw new UsageError('choose one of --session, --system and --bus');
  return { globals, rest };
}

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

/** Run vigilctl with `argv` (without node and script) and resolve with the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  // Hidden: what the bash and zsh completion scripts call.
  if (argv[0] === '__complete') return runComplete(argv.slice(1), io);
  const err = (line: string): void => void io.stderr.write(line + '\n');
  let parsed: { globals: Globals; rest: string[] };
  try {
    parsed = splitGlobals(argv);
  } catch (e) {
    err(`vigilctl: ${(e as Error).message}`);
    err(usage());
    return EXIT.USAGE;
  }
  const { globals, rest } = parsed;
  if (globals.version) {
    io.stdout.write(`vigilctl ${VERSION}\n`);
    return EXIT.OK;
  }
  if (rest[0] === 'help') {
    const found = findCommand(rest.slice(1));
    if (found) io.stdout.write(commandHelp(found.command));
    else if (rest.length > 1 && commandGroup(rest[1]).length === 0) {
      err(`vigilctl: unknown command '${rest.slice(1).join(' ')}'`);
      err(usage());
      return EXIT.USAGE;
    } else io.stdout.write(usage(rest.length > 1 ? commandGroup(rest[1]) : commands));
    return EXIT.OK;
  }
  if (rest.length === 0) {
    if (globals.help) {
      io.stdout.write(usage());
      return EXIT.OK;
    }
    err('vigilctl: missing command');
    err(usage());
    return EXIT.USAGE;
  }
  const found = findCommand(rest);
  if (!found) {
    const group = commandGroup(rest[0]);
    if (globals.help && group.length > 0) {
      io.stdout.write(usage(group));
      return EXIT.OK;
    }
    if (group.length > 0) {
      const sub = rest[1] === undefined ? 'needs a subcommand' : `has no subcommand '${rest[1]}'`;
      err(`vigilctl: ${rest[0]} ${sub}`);
      err(usage(group));
    } else {
      err(`vigilctl: unknown command '${rest[0]}'`);
      err(usage());
    }
    return EXIT.USAGE;
  }
  const { command, args } = found;
  if (globals.help) {
    io.stdout.write(commandHelp(command));
    return EXIT.OK;
  }

  const ctx = new RunContext({
    json: globals.json === true,
    target: chooseBus(globals, io.env),
    stdout: io.stdout,
    stderr: io.stderr,
    signal: io.signal,
  });
  try {
    return await command.run(ctx, args);
  } catch (e) {
    return report(e, command, ctx, err);
  } finally {
    await ctx.close();
  }
}

/** Print a failure as one line (plus, with --json, an error document on stdout). */
function report(
  e: unknown,
  command: CliCommand,
  ctx: RunContext,
  err: (line: string) => void,
): number {
  if (e instanceof UsageError) {
    err(`vigilctl: ${e.message}`);
    err(`usage: vigilctl ${command.usage}`);
    return EXIT.USAGE;
  }
  if (e instanceof InterruptedError) {
    err(`vigilctl: ${e.message}`);
    return EXIT.INTERRUPTED;
  }
  let name: string;
  let message: string;
  let code: number;
  let extra: Record<string, string> = {};
  if (e instanceof TaskEndedError) {
    [name, message, code] = [e.errorName, e.text, EXIT.TASK_FAILED];
    extra = { id: e.id, state: e.state };
  } else if (e instanceof DBusCallError) {
    [name, message] = [e.errorName, e.text];
    code = isUnreachable(e) ? EXIT.UNREACHABLE : EXIT.DBUS_ERROR;
  } else if (e instanceof BusUnavailableError) {
    err(`vigilctl: ${e.message}`);
    if (ctx.json) ctx.printJson({ error: { name: 'BusUnavailable', message: e.message } });
    return EXIT.UNREACHABLE;
  } else {
    err(`vigilctl: internal error: ${(e as Error)?.stack ?? String(e)}`);
    return EXIT.DBUS_ERROR;
  }
  // Keep it one line even if a message carries newlines.
  err(`vigilctl: ${name}: ${message.replace(/\s*\n\s*/g, ' ')}`);
  if (ctx.json) ctx.printJson({ ...extra, error: { name, message } });
  return code;
}

if (require.main === module) {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    // The first Ctrl-C lets long commands stop cleanly; a second one, or a command that does
    // not listen, ends the process anyway.
    if (interrupts > 1) process.exit(EXIT.INTERRUPTED);
    controller.abort();
    setTimeout(() => process.exit(EXIT.INTERRUPTED), 2000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed pipe (vigilctl watch | head) is not an error worth a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.OK);
  });
  main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: controller.signal,
  }).then(
    (code) => process.stdout.write('', () => process.exit(code)),
    (e: unknown) => {
      process.stderr.write(`vigilctl: internal error: ${String(e)}\n`);
      process.exit(EXIT.DBUS_ERROR);
    },
  );
}
