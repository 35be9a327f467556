import { VigilError } from '../core/errors';
import type { TypedDict } from '../core/typed';
import { bind, type CallContext, type InterfaceSpec } from '../bus/interface';
import { IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import type { ObjectServer } from '../bus/server';
import { usec } from '../bus/time';
import { toVariantDict, unwrapDict, Variant } from '../bus/values';
import type { StoredTask, TaskSummary } from './history';
import type { TaskManager } from './manager';
import type { Task } from './task';
import type { Submitter } from './types';
import { WaitRegistry } from './waiters';

export const TASKS_PATH = `${ROOT_PATH}/Tasks`;
export const taskPath = (id: string): string => `${TASKS_PATH}/${id}`;

const MAX_HISTORY = 10000;
/**
 * About how many bytes of summaries one GetHistory reply carries at most: newest first, it
 * stops at `limit` records or this budget, whichever comes first.
 */
export const HISTORY_REPLY_BYTES = 2 * 1024 * 1024;

/** A Task as exported: the task, and the registry its `Wait` callers are counted in. */
export interface TaskObject {
  readonly task: Task;
  readonly waits: WaitRegistry;
}

/** The caller of a submitting method, as the task manager takes it. */
export async function submitter(ctx: CallContext): Promise<Submitter> {
  const [uid, privileged] = await Promise.all([ctx.caller.uid(), ctx.caller.privileged()]);
  return { uid, privileged };
}

/** Params and full results are for a task's owner and root; others see summaries. */
async function seesAll(ctx: CallContext, ownerUid: number): Promise<boolean> {
  const uid = await ctx.caller.uid();
  return uid === 0 || uid === ownerUid;
}

export const taskInterface: InterfaceSpec<TaskObject> = {
  name: `${IFACE_PREFIX}Task`,
  methods: [
    {
      name: 'Cancel',
      access: 'owner',
      in: [],
      out: [],
      handler: (o) => o.task.cancel(),
    },
    {
      name: 'Pause',
      access: 'owner',
      in: [],
      out: [],
      handler: (o) => o.task.pause(),
    },
    {
      name: 'Resume',
      access: 'owner',
      in: [],
      out: [],
      handler: (o) => o.task.resume(),
    },
    {
      // Open to anyone; a non-owner gets the summary result. The wait ends with its caller.
      name: 'Wait',
      access: 'anyone',
      in: [],
      out: [['result', 'a{sv}']],
      handler: async ({ task, waits }, _args, ctx) => {
        const full = await seesAll(ctx, task.ownerUid);
        const ticket = waits.enter(ctx.caller.sender, await ctx.caller.uid());
        try {
          const result = await task.wait(ticket.signal);
          return toVariantDict(full ? result : task.smallResult);
        } finally {
          ticket.release();
        }
      },
    },
    {
      name: 'Input',
      access: 'owner',
      in: [['input', 'a{sv}']],
      out: [],
      handler: (o, [input]) => o.task.input(unwrapDict(input)),
    },
  ],
  owner: (o) => o.task.ownerUid,
  describe: (o) => `task ${o.task.id}`,
  properties: [
    { name: 'Id', type: 's', get: (o) => o.task.id, change: 'const' },
    { name: 'Kind', type: 's', get: (o) => o.task.kind.name, change: 'const' },
    { name: 'State', type: 's', get: (o) => o.task.state, change: 'emits' },
    { name: 'Progress', type: 'd', get: (o) => o.task.progress, change: 'emits' },
    { name: 'ProgressValid', type: 'b', get: (o) => o.task.progressValid, change: 'emits' },
    { name: 'Phase', type: 's', get: (o) => o.task.phase, change: 'emits' },
    { name: 'Done', type: 't', get: (o) => BigInt(Math.floor(o.task.done)), change: 'emits' },
    { name: 'Total', type: 't', get: (o) => BigInt(Math.floor(o.task.total)), change: 'emits' },
    { name: 'Unit', type: 's', get: (o) => o.task.unit, change: 'const' },
    { name: 'Rate', type: 'd', get: (o) => o.task.rate, change: 'emits' },
    { name: 'StartTime', type: 't', get: (o) => usec(o.task.startTime), change: 'emits' },
    {
      name: 'ExpectedEndTime',
      type: 't',
      get: (o) => usec(o.task.expectedEndTime),
      change: 'emits',
    },
    { name: 'FinishTime', type: 't', get: (o) => usec(o.task.finishTime), change: 'emits' },
    { name: 'OwnerUid', type: 'u', get: (o) => o.task.ownerUid, change: 'const' },
    { name: 'Cancelable', type: 'b', get: (o) => o.task.cancelable, change: 'const' },
    // Everybody sees it (GetManagedObjects, PropertiesChanged): capped, see tasks/summary.ts.
    {
      name: 'Result',
      type: 'a{sv}',
      get: (o) => toVariantDict(o.task.smallResult),
      change: 'emits',
    },
    { name: 'ErrorName', type: 's', get: (o) => o.task.errorName, change: 'emits' },
    { name: 'ErrorMessage', type: 's', get: (o) => o.task.errorMessage, change: 'emits' },
  ],
  signals: [
    {
      name: 'Progress',
      args: [
        ['progress', 'd'],
        ['done', 't'],
        ['total', 't'],
        ['rate', 'd'],
      ],
    },
    {
      name: 'Finished',
      args: [
        ['state', 's'],
        ['result', 'a{sv}'],
      ],
    },
  ],
};

export const taskManagerInterface: InterfaceSpec<TaskManager> = {
  name: `${IFACE_PREFIX}TaskManager`,
  methods: [
    {
      name: 'ListTasks',
      access: 'anyone',
      in: [],
      out: [['tasks', 'ao']],
      handler: (m) => m.list().map((t) => taskPath(t.id)),
    },
    {
      // Summaries, newest first, within `limit` (0: up to 10,000) and HISTORY_REPLY_BYTES.
      name: 'GetHistory',
      access: 'anyone',
      heavy: true,
      in: [['limit', 'u']],
      out: [['tasks', 'aa{sv}']],
      handler: (m, [limit]) => {
        const n = Number(limit);
        if (n > MAX_HISTORY) {
          throw new VigilError('InvalidArgument', `limit must be at most ${MAX_HISTORY}`);
        }
        return m.history(n === 0 ? MAX_HISTORY : n, HISTORY_REPLY_BYTES).map(summaryEntry);
      },
    },
    {
      // One task, live or from the history; the full result for its owner and root.
      name: 'GetTask',
      access: 'anyone',
      heavy: true,
      in: [['id', 's']],
      out: [['task', 'a{sv}']],
      handler: async (m, [id], ctx) => {
        const found = m.lookup(String(id));
        if (found.live) {
          return liveEntry(found.live, await seesAll(ctx, found.live.ownerUid));
        }
        return storedEntry(found.stored, await seesAll(ctx, found.stored.ownerUid));
      },
    },
  ],
  properties: [
    { name: 'Running', type: 'u', get: (m) => m.running, change: 'emits' },
    { name: 'Queued', type: 'u', get: (m) => m.queued, change: 'emits' },
    { name: 'MaxRunning', type: 'u', get: (m) => m.maxRunning, change: 'emits' },
  ],
  signals: [],
};

function resultVariant(result: TypedDict): Variant {
  return new Variant('a{sv}', toVariantDict(result));
}

/** A history record as GetHistory lists it (and GetTask shows a task that left the bus). */
function summaryEntry(r: TaskSummary): Record<string, Variant> {
  return {
    Id: new Variant('s', r.id),
    Kind: new Variant('s', r.kind),
    State: new Variant('s', r.state),
    OwnerUid: new Variant('u', r.ownerUid),
    Phase: new Variant('s', r.phase),
    Progress: new Variant('d', r.progress),
    Done: new Variant('t', BigInt(Math.floor(r.done))),
    Total: new Variant('t', BigInt(Math.floor(r.total))),
    StartTime: new Variant('t', usec(r.startTime)),
    FinishTime: new Variant('t', usec(r.finishTime)),
    Result: resultVariant(r.result),
    ErrorName: new Variant('s', r.errorName),
    ErrorMessage: new Variant('s', r.errorMessage),
  };
}

function storedEntry(r: StoredTask, full: boolean): Record<string, Variant> {
  const entry = summaryEntry(r);
  if (full && r.fullResult) entry.Result = resultVariant(r.fullResult);
  entry.OnBus = new Variant('b', false);
  return entry;
}

/** Every Task property of a live task, as GetAll has them, plus OnBus. */
function liveEntry(task: Task, full: boolean): Record<string, Variant> {
  const target: TaskObject = { task, waits: NO_WAITS };
  const entry: Record<string, Variant> = {};
  for (const p of taskInterface.properties) entry[p.name] = new Variant(p.type, p.get(target));
  if (full) entry.Result = resultVariant(task.result);
  entry.OnBus = new Variant('b', true);
  return entry;
}

/** Getters never touch the wait registry; liveEntry needs a TaskObject all the same. */
const NO_WAITS = new WaitRegistry(0, 0);

/**
 * Put the task manager and every task on the bus, and keep the bus in step with them.
 * `onPeerGone` reports bus clients that left, so their pending waits end with them.
 */
export function exportTasks(
  server: ObjectServer,
  manager: TaskManager,
  onPeerGone: (listener: (uniqueName: string) => void) => void,
): void {
  const waits = new WaitRegistry();
  onPeerGone((name) => waits.drop(name));
  server.export(TASKS_PATH, [bind(taskManagerInterface, manager)]);
  manager.on('countsChanged', () =>
    server.propertiesChanged(TASKS_PATH, taskManagerInterface.name, ['Running', 'Queued']),
  );
  manager.on('maxRunningChanged', () =>
    server.propertiesChanged(TASKS_PATH, taskManagerInterface.name, ['MaxRunning']),
  );
  const publish = (task: Task): void => {
    const path = taskPath(task.id);
    server.export(path, [bind(taskInterface, { task, waits })]);
    task.on('changed', (names) => server.propertiesChanged(path, taskInterface.name, names));
    task.on('progress', (progress, done, total, rate) =>
      server.signal(path, taskInterface, 'Progress', [
        progress,
        BigInt(Math.floor(done)),
        BigInt(Math.floor(total)),
        rate,
      ]),
    );
    task.on('finished', (state) =>
      server.signal(path, taskInterface, 'Finished', [state, toVariantDict(task.smallResult)]),
    );
  };
  for (const task of manager.list()) publish(task);
  manager.on('added', publish);
  manager.on('removed', (task) => server.unexport(taskPath(task.id)));
}
