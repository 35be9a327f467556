import {
  asCallError,
  DBusCallError,
  PROPERTIES_IFACE,
  TASK_IFACE,
  TASK_MANAGER_IFACE,
  TASKS_PATH,
  VIGIL_ERROR_PREFIX,
  type VigilClient,
} from './client';
import { InterruptedError, TaskEndedError, type TaskOutcome } from './command';
import {
  applyProgressSignal,
  applyProperties,
  emptyView,
  FINAL_STATES,
  type ProgressSink,
} from './progress';
import { str, unwrapDict, type BusValue } from './values';

const UNKNOWN_OBJECT = 'org.freedesktop.DBus.Error.UnknownObject';

export function notFound(id: string): DBusCallError {
  return new DBusCallError(`${VIGIL_ERROR_PREFIX}NotFound`, `no task ${id}`);
}

/**
 * A task given on the command line, as an id (`3f2a…`) or its object path. Anything that
 * cannot be a task id is reported the way the daemon reports unknown ids: NotFound.
 */
export function taskRef(arg: string): { id: string; path: string } {
  const id = arg.startsWith(TASKS_PATH + '/') ? arg.slice(TASKS_PATH.length + 1) : arg;
  if (!/^[A-Za-z0-9_]+$/.test(id)) throw notFound(arg);
  return { id, path: `${TASKS_PATH}/${id}` };
}

/** The object is not on the bus: vigil answers NotFound below its root, a plain bus UnknownObject. */
export function isUnknownObject(e: unknown): boolean {
  return (
    e instanceof DBusCallError &&
    (e.errorName === UNKNOWN_OBJECT || e.errorName === `${VIGIL_ERROR_PREFIX}NotFound`)
  );
}

export async function history(
  client: VigilClient,
  limit: number,
): Promise<Record<string, BusValue>[]> {
  const [records] = await client.call(TASKS_PATH, TASK_MANAGER_IFACE, 'GetHistory', 'u', [limit]);
  return ((records ?? []) as unknown[]).map(unwrapDict);
}

/**
 * One task as `TaskManager.GetTask` has it: live (every property, `OnBus` true) or from the
 * history; its full result when we own it. Undefined when the daemon does not know the id.
 */
export async function taskRecord(
  client: VigilClient,
  id: string,
): Promise<Record<string, BusValue> | undefined> {
  try {
    const [record] = await client.call(TASKS_PATH, TASK_MANAGER_IFACE, 'GetTask', 's', [id]);
    return unwrapDict(record);
  } catch (e) {
    if (isUnknownObject(e)) return undefined;
    throw e;
  }
}

/** A finished task's outcome from its history record (completed), or its error. */
function outcomeFromRecord(
  id: string,
  path: string,
  record: Record<string, BusValue>,
): TaskOutcome {
  const state = str(record.State);
  if (state === 'completed') return { id, path, state, result: unwrapDict(record.Result) };
  throw new TaskEndedError(
    id,
    state,
    str(record.ErrorName) || `${VIGIL_ERROR_PREFIX}Failed`,
    str(record.ErrorMessage) || `task ${id} ended ${state}`,
  );
}

/**
 * Follow a task to its end: signals feed the progress display, and `Task.Wait` (which replies
 * once the task has ended, even if that happened before we asked) gives the outcome, so no
 * race with a task that finishes quickly can lose it. A task that has already left the bus is
 * answered from the history.
 */
export async function followTask(
  client: VigilClient,
  path: string,
  sink: ProgressSink,
  signal: AbortSignal,
): Promise<TaskOutcome> {
  const id = path.slice(path.lastIndexOf('/') + 1);
  const view = emptyView(id);
  const unsubscribe = await client.subscribe((s) => {
    if (s.path !== path) return;
    if (s.iface === TASK_IFACE && s.member === 'Progress') applyProgressSignal(view, s.body);
    else if (s.iface === TASK_IFACE && s.member === 'Finished') view.state = str(s.body[0]);
    else if (s.iface === PROPERTIES_IFACE && s.member === 'PropertiesChanged') {
      if (s.body[0] !== TASK_IFACE) return;
      applyProperties(view, unwrapDict(s.body[1]));
    } else return;
    sink.update(id, view);
  }, path);
  let interrupt: (() => void) | undefined;
  try {
    try {
      applyProperties(view, await client.getAll(path, TASK_IFACE));
    } catch (e) {
      if (!isUnknownObject(e)) throw e;
      const record = await taskRecord(client, id);
      if (!record) throw notFound(id);
      return outcomeFromRecord(id, path, record);
    }
    sink.update(id, view);
    const interrupted = new Promise<never>((_, reject) => {
      interrupt = () => reject(new InterruptedError(id));
      if (signal.aborted) interrupt();
      else signal.addEventListener('abort', interrupt, { once: true });
    });
    try {
      const [result] = await Promise.race([
        client.call(path, TASK_IFACE, 'Wait', '', [], { timeoutMs: 0 }),
        interrupted,
      ]);
      view.state = 'completed';
      sink.update(id, view);
      return { id, path, state: 'completed', result: unwrapDict(result) };
    } catch (e) {
      if (e instanceof InterruptedError) throw e;
      const err = asCallError(e);
      if (isUnknownObject(err)) {
        const record = await taskRecord(client, id);
        if (!record) throw notFound(id);
        return outcomeFromRecord(id, path, record);
      }
      // Wait replied with the task's own error: report it with the state it ended in.
      let state = view.state;
      try {
        state = str(await client.get(path, TASK_IFACE, 'State'), state);
      } catch {
        // the task may have left the bus already; the error is what matters
      }
      if (!FINAL_STATES.has(state) || state === 'completed') throw err;
      view.state = state;
      sink.update(id, view);
      throw new TaskEndedError(id, state, err.errorName, err.text);
    }
  } finally {
    if (interrupt) signal.removeEventListener('abort', interrupt);
    await unsubscribe();
  }
}
