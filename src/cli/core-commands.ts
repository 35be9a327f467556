import {
  DAEMON_IFACE,
  DBusCallError,
  OBJECT_MANAGER_IFACE,
  RANDOM_DATA_IFACE,
  RANDOM_DATA_PATH,
  ROOT_PATH,
  TASK_IFACE,
  TASK_MANAGER_IFACE,
  TASKS_PATH,
  VIGIL_ERROR_PREFIX,
  type VigilClient,
} from './client';
import { EXIT, intArg, type CliCommand, type CliContext } from './command';
import { applyProperties, emptyView, etaSeconds, FINAL_STATES } from './progress';
import { history, isUnknownObject, notFound, taskRecord, taskRef } from './tasks';
import {
  formatCount,
  formatDuration,
  formatTime,
  formatValue,
  num,
  str,
  unwrapDict,
  type BusValue,
} from './values';

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const UINT32_MAX = 2 ** 32 - 1;

/** The Task properties in the order of the contract (DESIGN.md, "Task model"). */
const TASK_PROPERTIES = [
  'Id',
  'Kind',
  'State',
  'Progress',
  'ProgressValid',
  'Phase',
  'Done',
  'Total',
  'Unit',
  'Rate',
  'StartTime',
  'ExpectedEndTime',
  'FinishTime',
  'OwnerUid',
  'Cancelable',
  'Result',
  'ErrorName',
  'ErrorMessage',
];
const TIME_PROPERTIES = new Set(['StartTime', 'ExpectedEndTime', 'FinishTime']);

/** Human lines for a set of task properties (`task ID`), Result expanded below its name. */
function propertyLines(props: Record<string, BusValue>): string[] {
  const names = [
    ...TASK_PROPERTIES.filter((n) => n in props),
    ...Object.keys(props).filter((n) => !TASK_PROPERTIES.includes(n)),
  ];
  const width = Math.max(...names.map((n) => n.length)) + 1;
  const lines: string[] = [];
  for (const name of names) {
    const v = props[name];
    const label = `${name}:`.padEnd(width);
    if (name === 'Result') {
      const result = unwrapDict(v);
      const keys = Object.keys(result);
      lines.push(`${label} ${keys.length === 0 ? '-' : ''}`.trimEnd());
      for (const k of keys) lines.push(`  ${k}: ${formatValue(result[k])}`);
    } else if (TIME_PROPERTIES.has(name)) {
      lines.push(`${label} ${formatTime(v)}${num(v) > 0 ? ` (${String(v)})` : ''}`);
    } else if (name === 'Progress') {
      lines.push(`${label} ${Math.floor(num(v) * 100)}% (${num(v)})`);
    } else {
      lines.push(`${label} ${v === '' ? '-' : formatValue(v)}`);
    }
  }
  return lines;
}

function resultLines(result: Record<string, BusValue>): string[] {
  return Object.entries(result).map(([k, v]) => `${k}: ${formatValue(v)}`);
}

// ---- random ----

const randomQuick: CliCommand = {
  name: 'random quick',
  usage: 'random quick BITS',
  summary: 'a uniformly random integer in [0, 2^BITS), at once',
  async run(ctx, args) {
    const { positionals } = ctx.parse(args, {}, 1, 1);
    const bits = intArg(positionals[0], 'BITS', INT32_MIN, INT32_MAX);
    const client = await ctx.connect();
    const [result] = await client.call(RANDOM_DATA_PATH, RANDOM_DATA_IFACE, 'quick', 'i', [bits]);
    if (ctx.json) ctx.printJson({ bits, result });
    else ctx.print(String(result));
    return EXIT.OK;
  },
};

const randomSlow: CliCommand = {
  name: 'random slow',
  usage: 'random slow BITS [--no-wait]',
  summary: 'a number drawn bit by bit as a task: prints its id, then the number',
  help:
    'Prints the task id at once, shows progress until slow_result arrives, then prints the\n' +
    'number. With --no-wait it prints only the id (follow it later with `vigilctl wait ID`).',
  async run(ctx, args) {
    const { values, positionals } = ctx.parse(args, { 'no-wait': { type: 'boolean' } }, 1, 1);
    const bits = intArg(positionals[0], 'BITS', INT32_MIN, INT32_MAX);
    const client = await ctx.connect();
    // slow_result is the tutorial's completion signal: listen before asking so it cannot be missed.
    const slowResults = new Map<string, string>();
    const unsubscribe = values['no-wait']
      ? undefined
      : await client.subscribe((s) => {
          if (s.iface === RANDOM_DATA_IFACE && s.member === 'slow_result') {
            slowResults.set(String(s.body[0]), String(s.body[1]));
          }
        }, RANDOM_DATA_PATH);
    try {
      const [reply] = await client.call(RANDOM_DATA_PATH, RANDOM_DATA_IFACE, 'slow', 'i', [bits]);
      const id = String(reply);
      const path = `${TASKS_PATH}/${id}`;
      if (values['no-wait']) {
        if (ctx.json) ctx.printJson({ id, path, bits });
        else ctx.print(id);
        return EXIT.OK;
      }
      if (!ctx.json) ctx.print(id);
      const outcome = await ctx.followTask(path);
      const result = slowResults.get(id) ?? str(outcome.result.result);
      if (ctx.json) ctx.printJson({ id, path, bits, state: outcome.state, result });
      else ctx.print(result);
      return EXIT.OK;
    } finally {
      await unsubscribe?.();
    }
  },
};

// ---- tasks ----

/** Every Task object on the bus, from one GetManagedObjects call (not one call per task). */
async function busTasks(client: VigilClient): Promise<Record<string, BusValue>[]> {
  const [objects] = await client.call(ROOT_PATH, OBJECT_MANAGER_IFACE, 'GetManagedObjects');
  const all = unwrapDict(objects) as Record<string, Record<string, Record<string, BusValue>>>;
  return Object.entries(all)
    .filter(([, ifaces]) => ifaces[TASK_IFACE] !== undefined)
    .map(([path, ifaces]) => ({ Path: path, ...ifaces[TASK_IFACE] }));
}

const tasksCommand: CliCommand = {
  name: 'tasks',
  usage: 'tasks',
  summary: 'the tasks on the bus: running, queued, recently finished',
  async run(ctx, args) {
    ctx.parse(args, {}, 0, 0);
    const client = await ctx.connect();
    const tasks = await busTasks(client);
    if (ctx.json) {
      ctx.printJson(tasks);
      return EXIT.OK;
    }
    if (tasks.length === 0) {
      ctx.note('no tasks');
      return EXIT.OK;
    }
    const now = Date.now();
    ctx.printTable(
      ['ID', 'KIND', 'STATE', 'PROGRESS', 'DONE/TOTAL', 'RATE', 'ETA', 'STARTED', 'OWNER'],
      tasks.map((t) => {
        const view = applyProperties(emptyView(str(t.Id)), t);
        const eta = etaSeconds(view, now);
        const running = !FINAL_STATES.has(view.state) && view.state !== 'queued';
        return [
          view.id,
          view.kind,
          view.phase && view.state === 'running' ? `running/${view.phase}` : view.state,
          view.progressValid || view.progress > 0 ? `${Math.floor(view.progress * 100)}%` : '-',
          view.total > 0
            ? `${formatCount(view.done)}/${formatCount(view.total)} ${view.unit}`
            : `${formatCount(view.done)} ${view.unit}`,
          view.rate > 0 ? `${formatCount(view.rate)}/s` : '-',
          running && eta !== undefined ? formatDuration(eta) : '-',
          formatTime(t.StartTime),
          String(t.OwnerUid ?? '-'),
        ];
      }),
    );
    return EXIT.OK;
  },
};

const taskCommand: CliCommand = {
  name: 'task',
  usage: 'task ID',
  summary: 'every property of one task (from the history once it left the bus)',
  help: 'The full result is shown to the task’s owner and root; others see its summary.',
  async run(ctx, args) {
    const { positionals } = ctx.parse(args, {}, 1, 1);
    const { id, path } = taskRef(positionals[0]);
    const client = await ctx.connect();
    const record = await taskRecord(client, id);
    if (!record) throw notFound(id);
    const { OnBus, ...props } = record;
    const onBus = OnBus === true;
    if (ctx.json) {
      ctx.printJson({ Path: path, OnBus: onBus, ...props });
      return EXIT.OK;
    }
    ctx.print(`${path}${onBus ? '' : '  (from the history; no longer on the bus)'}`);
    for (const line of propertyLines(props)) ctx.print(`  ${line}`);
    return EXIT.OK;
  },
};

const waitCommand: CliCommand = {
  name: 'wait',
  usage: 'wait ID',
  summary: 'show a task’s progress until it ends, then its result',
  async run(ctx, args) {
    const { positionals } = ctx.parse(args, {}, 1, 1);
    const { path } = taskRef(positionals[0]);
    const outcome = await ctx.followTask(path);
    if (ctx.json) ctx.printJson(outcome);
    else {
      const lines = resultLines(outcome.result);
      for (const line of lines.length > 0 ? lines : [outcome.state]) ctx.print(line);
    }
    return EXIT.OK;
  },
};

/** Cancel, Pause and Resume share their shape: call, then report the state it left. */
function controlCommand(
  method: 'Cancel' | 'Pause' | 'Resume',
  summary: string,
  verb: string,
): CliCommand {
  const name = method.toLowerCase();
  return {
    name,
    usage: `${name} ID`,
    summary,
    async run(ctx: CliContext, args: string[]) {
      const { positionals } = ctx.parse(args, {}, 1, 1);
      const { id, path } = taskRef(positionals[0]);
      const client = await ctx.connect();
      try {
        await client.call(path, TASK_IFACE, method);
      } catch (e) {
        if (!isUnknownObject(e)) throw e;
        // Gone from the bus: it finished long enough ago; say so as the daemon would.
        const record = await taskRecord(client, id);
        if (!record) throw notFound(id);
        throw new DBusCallError(
          `${VIGIL_ERROR_PREFIX}Failed`,
          `cannot ${verb} task ${id}: it is ${str(record.State)}`,
        );
      }
      let state = '';
      try {
        state = str(await client.get(path, TASK_IFACE, 'State'));
      } catch {
        // a cancelled queued task may already have left; the call itself succeeded
      }
      if (ctx.json) ctx.printJson({ id, path, action: name, state });
      else ctx.print(`${id} ${state || name + ' requested'}`);
      return EXIT.OK;
    },
  };
}

const historyCommand: CliCommand = {
  name: 'history',
  usage: 'history [--limit N]',
  summary: 'finished tasks, newest first, also from before a restart',
  help:
    '--limit N   show at most N tasks (default 20; 0: as many as one reply carries, about\n' +
    '            2 MiB of summaries, newest first)',
  async run(ctx, args) {
    const { values } = ctx.parse(args, { limit: { type: 'string', short: 'n' } }, 0, 0);
    const limit =
      values.limit === undefined ? 20 : intArg(String(values.limit), '--limit', 0, UINT32_MAX);
    const client = await ctx.connect();
    const records = await history(client, limit);
    if (ctx.json) {
      ctx.printJson(records);
      return EXIT.OK;
    }
    if (records.length === 0) {
      ctx.note('no finished tasks');
      return EXIT.OK;
    }
    ctx.printTable(
      ['ID', 'KIND', 'STATE', 'STARTED', 'FINISHED', 'TOOK', 'OUTCOME'],
      records.map((r) => {
        const start = num(r.StartTime);
        const finish = num(r.FinishTime);
        const outcome =
          str(r.State) === 'completed'
            ? formatValue(unwrapDict(r.Result))
            : str(r.ErrorMessage) || str(r.ErrorName);
        return [
          str(r.Id),
          str(r.Kind),
          str(r.State),
          formatTime(start),
          formatTime(finish),
          start > 0 && finish >= start ? formatDuration((finish - start) / 1e6) : '-',
          outcome.length > 60 ? outcome.slice(0, 59) + '…' : outcome,
        ];
      }),
    );
    return EXIT.OK;
  },
};

const statusCommand: CliCommand = {
  name: 'status',
  usage: 'status',
  summary: 'daemon version, uptime and task counts',
  async run(ctx, args) {
    ctx.parse(args, {}, 0, 0);
    const client = await ctx.connect();
    const [daemon, manager] = await Promise.all([
      client.getAll(ROOT_PATH, DAEMON_IFACE),
      client.getAll(TASKS_PATH, TASK_MANAGER_IFACE),
    ]);
    if (ctx.json) {
      ctx.printJson({ Bus: client.describe(), ...daemon, ...manager });
      return EXIT.OK;
    }
    const started = num(daemon.StartTime);
    ctx.print(`vigil ${str(daemon.Version)} on ${client.describe()}`);
    ctx.print(
      `started ${formatTime(started)}` +
        (started > 0 ? ` (up ${formatDuration(Date.now() / 1000 - started / 1e6)})` : ''),
    );
    ctx.print(
      `tasks: ${num(manager.Running)} running, ${num(manager.Queued)} queued, ` +
        `at most ${num(manager.MaxRunning)} at once`,
    );
    return EXIT.OK;
  },
};

export const coreCommands: CliCommand[] = [
  randomQuick,
  randomSlow,
  tasksCommand,
  taskCommand,
  waitCommand,
  controlCommand('Cancel', 'cancel a task (its owner or root)', 'cancel'),
  controlCommand('Pause', 'pause a running task', 'pause'),
  controlCommand('Resume', 'resume a paused task', 'resume'),
  historyCommand,
  statusCommand,
];
