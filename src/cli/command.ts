/**
 * vigilctl's command interface: how a capability adds subcommands.
 *
 * A subcommand is a `CliCommand` listed in the registry (src/cli/commands.ts). A capability
 * module (src/cli/randomx.ts, src/cli/wol.ts) exports `export const commands: CliCommand[]` and
 * the registry picks it up. Its `name` is
 * one or two words ('wake', 'hosts add'); the longest name that matches the command line wins,
 * so 'hosts' and 'hosts add' can both exist. `run` gets the words after the name and returns
 * an exit code. A typical command:
 *
 *   export const hashCommand: CliCommand = {
 *     name: 'hash',
 *     usage: 'hash KEY INPUT [--hex]',
 *     summary: 'RandomX hash of one input',
 *     async run(ctx, args) {
 *       const { values, positionals } = ctx.parse(args, { hex: { type: 'boolean' } }, 2, 2);
 *       const client = await ctx.connect();           // after parsing: usage errors need no bus
 *       const [hash] = await client.call(path, iface, 'Hash', 'ayay', [key, input]);
 *       if (ctx.json) ctx.printJson({ hash });          // Buffers print as hex, bigints as numbers
 *       else ctx.print(toHex(hash));
 *       return EXIT.OK;
 *     },
 *   };
 *
 * Long jobs: call the method that returns a Task path, then `await ctx.followTask(path)`. It
 * shows progress (a bar on a terminal, plain lines on a pipe, both on stderr) and resolves
 * with the task's result once it completes; when the task fails, is cancelled or interrupted
 * it throws TaskEndedError, which vigilctl prints as one line and exits with EXIT.TASK_FAILED.
 *
 * The client (src/cli/client.ts): `call(path, iface, member, signature, body, { timeoutMs })`
 * resolves with the reply body (25 s timeout by default, 0 = none); `getAll`/`get` read
 * properties with Variants stripped; `subscribe(listener, pathNamespace)` delivers vigil's
 * signals below a path. Values: src/cli/values.ts (toJson, formatValue, formatTable, ...).
 *
 * Errors: throw UsageError for bad arguments (vigilctl prints it with the command's usage and
 * exits 2). D-Bus errors from `client.call` are DBusCallError and print as one line,
 * `vigilctl: org.vigil.Vigil1.Error.NotFound: no task abc` (exit 1, or 3 when vigil or the bus
 * cannot be reached). Nothing else needs catching.
 */
import { parseArgs } from 'node:util';
import type { VigilClient } from './client';
import type { ProgressSink } from './progress';
import type { BusValue } from './values';

/**
 * Exit codes of vigilctl (also in `vigilctl --help`):
 *   0  success
 *   1  vigil answered with a D-Bus error (invalid argument, not found, access denied, ...)
 *   2  bad usage: unknown command, wrong arguments
 *   3  vigil is unreachable: no bus, the bus connection dropped, or nobody owns org.vigil.Vigil1
 *   4  the task ended without completing (failed, cancelled or interrupted)
 *   130 interrupted by Ctrl-C while waiting (the task itself keeps running)
 */
export const EXIT = {
  OK: 0,
  DBUS_ERROR: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  TASK_FAILED: 4,
  INTERRUPTED: 130,
} as const;

export interface CliCommand {
  /** One or two words, e.g. 'tasks', 'random quick', 'hosts add'. */
  name: string;
  /** The synopsis after `vigilctl`, e.g. 'random quick BITS'. */
  usage: string;
  /** One line for `vigilctl --help`. */
  summary: string;
  /** Longer help shown by `vigilctl help NAME` (options, examples); optional. */
  help?: string;
  /** Run with the arguments after the name; resolve with an exit code from EXIT. */
  run(ctx: CliContext, args: string[]): Promise<number>;
}

/** The outcome of a task that completed. */
export interface TaskOutcome {
  id: string;
  path: string;
  state: string;
  /** The task's Result a{sv}, Variants stripped (bytes stay Buffers, `t` stays bigint). */
  result: Record<string, BusValue>;
}

export interface FollowOptions {
  /** Do not show progress (the result is still awaited). */
  quiet?: boolean;
}

/** The option table of node's util.parseArgs. */
export type OptionSpec = Record<
  string,
  { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }
>;

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export interface CliContext {
  /** --json was given: print one JSON document (watch: one JSON object per line). */
  readonly json: boolean;
  /** Aborted on Ctrl-C / SIGTERM; long commands stop waiting and return. */
  readonly signal: AbortSignal;
  /** Connect to the bus chosen by the global options (once; later calls reuse it). */
  connect(): Promise<VigilClient>;
  /** Parse the command's options strictly; positional count outside [min, max] is a usage error. */
  parse(args: string[], options?: OptionSpec, min?: number, max?: number): ParsedArgs;
  /** A line on stdout. */
  print(line?: string): void;
  /** A value as JSON on stdout (Buffers as hex, 64-bit integers as numbers or strings). */
  printJson(value: unknown): void;
  /** An aligned table on stdout. */
  printTable(headers: string[], rows: string[][]): void;
  /** A note on stderr (not part of the output a script parses). */
  note(line: string): void;
  /** Show a task's progress until it ends; resolve with its result or throw TaskEndedError. */
  followTask(path: string, options?: FollowOptions): Promise<TaskOutcome>;
  /**
   * A progress display on stdout, for commands whose output is live progress (watch): bars on
   * a terminal, throttled plain lines otherwise; with --json only `log` lines are written.
   */
  liveOutput(): ProgressSink;
}

/** Bad arguments: printed with the command's usage, exit 2. */
export class UsageError extends Error {}

/** A followed task ended failed, cancelled or interrupted. */
export class TaskEndedError extends Error {
  constructor(
    readonly id: string,
    readonly state: string,
    readonly errorName: string,
    readonly text: string,
  ) {
    super(`${errorName}: ${text}`);
    this.name = 'TaskEndedError';
  }
}

/** Ctrl-C while waiting for a task: vigilctl stops waiting, the task keeps running. */
export class InterruptedError extends Error {
  constructor(readonly id: string) {
    super(`stopped waiting; task ${id} keeps running (vigilctl cancel ${id} stops it)`);
    this.name = 'InterruptedError';
  }
}

/** Placeholder for arguments like `-5` so parseArgs does not take them for options. */
const NEGATIVE = '\u0000neg:';

/**
 * util.parseArgs, strict, with usage errors as UsageError and negative numbers accepted as
 * values (`random quick -1` reaches the daemon, which explains the range).
 */
export function parseCommandArgs(
  args: string[],
  options: OptionSpec = {},
  min = 0,
  max = Infinity,
): ParsedArgs {
  const protectedArgs = args.map((a) => (/^-\d/.test(a) ? NEGATIVE + a : a));
  const restore = (v: string): string => (v.startsWith(NEGATIVE) ? v.slice(NEGATIVE.length) : v);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: protectedArgs, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0].replace(/^TypeError \[\w+\]: /, ''));
  }
  const positionals = parsed.positionals.map(restore);
  const values: ParsedArgs['values'] = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    values[k] = Array.isArray(v)
      ? v.map((x) => (typeof x === 'string' ? restore(x) : x))
      : typeof v === 'string'
        ? restore(v)
        : v;
  }
  if (positionals.length < min) throw new UsageError('missing argument');
  if (positionals.length > max) {
    throw new UsageError(`unexpected argument '${positionals[max]}'`);
  }
  return { values, positionals };
}

/** An integer argument within [min, max], or a UsageError naming it. */
export function intArg(text: string, what: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text.trim()))
    throw new UsageError(`${what} must be an integer, not '${text}'`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${what} must be between ${min} and ${max}`);
  }
  return n;
}
