import { VigilError } from '../core/errors';
import { bind, type InterfaceSpec } from '../bus/interface';
import { IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import type { ObjectServer } from '../bus/server';
import { usec } from '../bus/time';
import { toVariantDict, unwrapDict, Variant } from '../bus/values';
import type { TaskRecord } from './history';
import type { TaskManager } from './manager';
import type { Task } from './task';

export const TASKS_PATH = `${ROOT_PATH}/Tasks`;
export const taskPath = (id: string): string => `${TASKS_PATH}/${id}`;

const MAX_HISTORY = 10000;

export const taskInterface: InterfaceSpec<Task> = {
  name: `${IFACE_PREFIX}Task`,
  methods: [
    {
      name: 'Cancel',
      access: 'owner',
      in: [],
      out: [],
      handler: (t) => t.cancel(),
    },
    {
      name: 'Pause',
      access: 'owner',
      in: [],
      out: [],
      handler: (t) => t.pause(),
    },
    {
      name: 'Resume',
      access: 'owner',
      in: [],
      out: [],
      handler: (t) => t.resume(),
    },
    {
      name: 'Wait',
      access: 'anyone',
      in: [],
      out: [['result', 'a{sv}']],
      handler: async (t) => toVariantDict(await t.wait()),
    },
    {
      name: 'Input',
      access: 'owner',
      in: [['input', 'a{sv}']],
      out: [],
      handler: (t, [input]) => t.input(unwrapDict(input)),
    },
  ],
  owner: (t) => t.ownerUid,
  describe: (t) => `task ${t.id}`,
  properties: [
    { name: 'Id', type: 's', get: (t) => t.id, change: 'const' },
    { name: 'Kind', type: 's', get: (t) => t.kind.name, change: 'const' },
    { name: 'State', type: 's', get: (t) => t.state, change: 'emits' },
    { name: 'Progress', type: 'd', get: (t) => t.progress, change: 'emits' },
    { name: 'ProgressValid', type: 'b', get: (t) => t.progressValid, change: 'emits' },
    { name: 'Phase', type: 's', get: (t) => t.phase, change: 'emits' },
    { name: 'Done', type: 't', get: (t) => BigInt(Math.floor(t.done)), change: 'emits' },
    { name: 'Total', type: 't', get: (t) => BigInt(Math.floor(t.total)), change: 'emits' },
    { name: 'Unit', type: 's', get: (t) => t.unit, change: 'const' },
    { name: 'Rate', type: 'd', get: (t) => t.rate, change: 'emits' },
    { name: 'StartTime', type: 't', get: (t) => usec(t.startTime), change: 'emits' },
    { name: 'ExpectedEndTime', type: 't', get: (t) => usec(t.expectedEndTime), change: 'emits' },
    { name: 'FinishTime', type: 't', get: (t) => usec(t.finishTime), change: 'emits' },
    { name: 'OwnerUid', type: 'u', get: (t) => t.ownerUid, change: 'const' },
    { name: 'Cancelable', type: 'b', get: (t) => t.cancelable, change: 'const' },
    { name: 'Result', type: 'a{sv}', get: (t) => toVariantDict(t.result), change: 'emits' },
    { name: 'ErrorName', type: 's', get: (t) => t.errorName, change: 'emits' },
    { name: 'ErrorMessage', type: 's', get: (t) => t.errorMessage, change: 'emits' },
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
      name: 'GetHistory',
      access: 'anyone',
      in: [['limit', 'u']],
      out: [['tasks', 'aa{sv}']],
      handler: (m, [limit]) => {
        const n = Number(limit);
        if (n > MAX_HISTORY) {
          throw new VigilError('InvalidArgument', `limit must be at most ${MAX_HISTORY}`);
        }
        return m.history(n === 0 ? MAX_HISTORY : n).map(historyEntry);
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

function historyEntry(r: TaskRecord): Record<string, Variant> {
  return {
    Id: new Variant('s', r.id),
    Kind: new Variant('s', r.kind),
    State: new Variant('s', r.state),
    OwnerUid: new Variant('u', r.ownerUid),
    Progress: new Variant('d', r.progress),
    Done: new Variant('t', BigInt(Math.floor(r.done))),
    Total: new Variant('t', BigInt(Math.floor(r.total))),
    StartTime: new Variant('t', usec(r.startTime)),
    FinishTime: new Variant('t', usec(r.finishTime)),
    Result: new Variant('a{sv}', toVariantDict(r.result)),
    ErrorName: new Variant('s', r.errorName),
    ErrorMessage: new Variant('s', r.errorMessage),
  };
}

/** Put the task manager and every task on the bus, and keep the bus in step with them. */
export function exportTasks(server: ObjectServer, manager: TaskManager): void {
  server.export(TASKS_PATH, [bind(taskManagerInterface, manager)]);
  manager.on('countsChanged', () =>
    server.propertiesChanged(TASKS_PATH, taskManagerInterface.name, ['Running', 'Queued']),
  );
  manager.on('maxRunningChanged', () =>
    server.propertiesChanged(TASKS_PATH, taskManagerInterface.name, ['MaxRunning']),
  );
  const publish = (task: Task): void => {
    const path = taskPath(task.id);
    server.export(path, [bind(taskInterface, task)]);
    task.on('changed', (names) => server.propertiesChanged(path, taskInterface.name, names));
    task.on('progress', (progress, done, total, rate) =>
      server.signal(path, taskInterface, 'Progress', [
        progress,
        BigInt(Math.floor(done)),
        BigInt(Math.floor(total)),
        rate,
      ]),
    );
    task.on('finished', (state, result) =>
      server.signal(path, taskInterface, 'Finished', [state, toVariantDict(result)]),
    );
  };
  for (const task of manager.list()) publish(task);
  manager.on('added', publish);
  manager.on('removed', (task) => server.unexport(taskPath(task.id)));
}
