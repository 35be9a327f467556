import { setImmediate as tick } from 'node:timers/promises';
import { openStateDatabase } from '../../src/core/database';
import { typed } from '../../src/core/typed';
import { TaskHistory } from '../../src/tasks/history';
import { TaskManager, type TaskManagerOptions } from '../../src/tasks/manager';
import { resultBytes, SMALL_RESULT_BYTES, smallResult } from '../../src/tasks/summary';
import type { Submitter, TaskKind } from '../../src/tasks/types';
import { WaitRegistry } from '../../src/tasks/waiters';
import { tempStateDir } from '../helpers/daemon';

/** An unprivileged submitter. */
const user = (uid: number): Submitter => ({ uid, privileged: false });

/** The task machinery without a bus: what the D-Bus layer translates. */
function manager(
  maxRunning = 1,
  historyLimit?: number,
  more: Partial<TaskManagerOptions> = {},
): TaskManager {
  return new TaskManager({
    maxRunning,
    retentionMs: 60_000,
    maxQueuedPerUser: 10,
    historyLimit,
    history: new TaskHistory(openStateDatabase(tempStateDir())),
    ...more,
  });
}

/** A kind that reports progress as often as it can for `ms`, yielding to the event loop. */
const chatty: TaskKind<{ ms: number }> = {
  name: 'chatty',
  unit: 'items',
  cancelable: true,
  async run(ctx, { ms }) {
    const end = Date.now() + ms;
    let done = 0;
    ctx.setPhase('work', 1_000_000_000);
    while (Date.now() < end) {
      for (let i = 0; i < 100; i++) ctx.progress(++done);
      await tick();
      await ctx.pausePoint();
    }
    return { reports: typed.u(done) };
  },
};

test('progress events are batched to 10 a second however often the job reports', async () => {
  const m = manager();
  m.registerKind(chatty as TaskKind);
  const task = m.submit('chatty', { ms: 1500 }, user(1000));
  let progressEvents = 0;
  let lastProgress = 0;
  task.on('progress', (p) => {
    expect(p).toBeGreaterThanOrEqual(lastProgress);
    lastProgress = p;
    progressEvents++;
  });
  const result = await task.wait();
  const reports = result.reports.value as number;
  expect(reports).toBeGreaterThan(10_000);
  expect(progressEvents).toBeGreaterThan(5);
  expect(progressEvents).toBeLessThanOrEqual(15 + 3);
  expect(task.rate).toBe(0);
});

// Who may steer a task is the Task table's `owner` access, enforced by the object server
// (test/access.test.ts); here only the logic.
test('wrong states; a queued task cancelled before it started', async () => {
  const m = manager(1);
  m.registerKind(chatty as TaskKind);
  const a = m.submit('chatty', { ms: 300 }, user(1000));
  const b = m.submit('chatty', { ms: 10 }, user(1001));
  expect([a.state, b.state]).toEqual(['running', 'queued']);
  expect(() => a.resume()).toThrow(/running/);
  expect(() => b.pause()).toThrow(/queued/);
  b.cancel();
  expect(b.state).toBe('cancelled');
  await expect(b.wait()).rejects.toThrow(/cancelled before it started/);
  a.pause();
  expect(a.state).toBe('paused');
  a.resume();
  expect(a.state).toBe('running');
  await a.wait();
  expect(() => a.cancel()).toThrow(/completed/);
  expect(m.history(10).map((r) => r.id)).toEqual([a.id, b.id]);
});

/** A kind that runs until the test releases it, counting the steps it takes. */
function gatedKind(): {
  kind: TaskKind;
  started: string[];
  steps: Map<string, number>;
  release(id: string): void;
} {
  const gates = new Map<string, () => void>();
  const released = new Set<string>();
  const started: string[] = [];
  const steps = new Map<string, number>();
  const kind: TaskKind = {
    name: 'gated',
    unit: 'steps',
    cancelable: true,
    async run(ctx) {
      started.push(ctx.id);
      const done = new Promise<void>((resolve) => gates.set(ctx.id, resolve));
      let finished = false;
      void done.then(() => (finished = true));
      while (!finished && !released.has(ctx.id)) {
        await ctx.pausePoint();
        steps.set(ctx.id, (steps.get(ctx.id) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 2));
      }
      return {};
    },
  };
  return {
    kind,
    started,
    steps,
    release: (id) => {
      released.add(id);
      gates.get(id)?.();
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a paused task gives its slot up; Resume waits queued, the job held, until a slot frees', async () => {
  const m = manager(1);
  const g = gatedKind();
  m.registerKind(g.kind);
  const a = m.submit('gated', {}, user(1000));
  const b = m.submit('gated', {}, user(1000));
  expect([a.state, b.state, m.running, m.queued]).toEqual(['running', 'queued', 1, 1]);
  a.pause();
  // The slot went to b at once.
  expect([a.state, b.state, m.running, m.queued]).toEqual(['paused', 'running', 1, 0]);
  a.resume();
  expect([a.state, m.queued]).toEqual(['queued', 1]);
  expect(a.context.paused).toBe(true);
  await sleep(30);
  const held = g.steps.get(a.id) ?? 0;
  await sleep(60);
  expect(g.steps.get(a.id) ?? 0).toBeLessThanOrEqual(held + 1);
  // Waiting for its slot it may be paused again, and resumed again.
  a.pause();
  expect([a.state, m.queued]).toEqual(['paused', 0]);
  a.resume();
  expect(a.state).toBe('queued');
  g.release(b.id);
  await b.wait();
  expect([a.state, m.running, a.context.paused]).toEqual(['running', 1, false]);
  await sleep(30);
  expect(g.steps.get(a.id) ?? 0).toBeGreaterThan(held + 1);
  g.release(a.id);
  await a.wait();
  expect(a.state).toBe('completed');
  expect([m.running, m.queued]).toEqual([0, 0]);
});

test('a resumed task waiting for its slot can be cancelled, and gives nothing back it does not hold', async () => {
  const m = manager(1);
  const g = gatedKind();
  m.registerKind(g.kind);
  const a = m.submit('gated', {}, user(1000));
  const b = m.submit('gated', {}, user(1000));
  a.pause();
  a.resume();
  expect(a.state).toBe('queued');
  a.cancel();
  await expect(a.wait()).rejects.toThrow(/cancelled/);
  expect(a.state).toBe('cancelled');
  expect([b.state, m.running, m.queued]).toEqual(['running', 1, 0]);
  g.release(b.id);
  await b.wait();
});

test('queued tasks are taken round-robin across UIDs, privileged owners first', async () => {
  const m = manager(1, undefined, { maxQueuedPerUser: 64 });
  const g = gatedKind();
  m.registerKind(g.kind);
  const blocker = m.submit('gated', {}, user(5));
  const hog = Array.from({ length: 5 }, () => m.submit('gated', {}, user(1000)));
  const other = m.submit('gated', {}, user(1001));
  const third = m.submit('gated', {}, user(1002));
  const root = m.submit('gated', {}, { uid: 0, privileged: true });
  const order = [root, hog[0], other, third, hog[1], hog[2], hog[3], hog[4]];
  let current = blocker;
  for (const next of order) {
    g.release(current.id);
    await current.wait();
    expect(next.state).toBe('running');
    current = next;
  }
  g.release(current.id);
  await current.wait();
  expect(g.started).toEqual([blocker, ...order].map((t) => t.id));
});

test('one unprivileged UID never holds every slot; privileged owners may', async () => {
  const m = manager(3, undefined, { maxQueuedPerUser: 64 });
  const g = gatedKind();
  m.registerKind(g.kind);
  const hog = Array.from({ length: 4 }, () => m.submit('gated', {}, user(1000)));
  expect(hog.map((t) => t.state)).toEqual(['running', 'running', 'queued', 'queued']);
  const root = m.submit('gated', {}, { uid: 0, privileged: true });
  expect(root.state).toBe('running');
  const root2 = m.submit('gated', {}, { uid: 0, privileged: true });
  expect(root2.state).toBe('queued');
  g.release(hog[0].id);
  await hog[0].wait();
  // The free slot goes to the privileged queue first.
  expect([root2.state, hog[2].state]).toEqual(['running', 'queued']);
  for (const t of [...hog, root, root2]) g.release(t.id);
  await Promise.all([...hog, root, root2].map((t) => t.wait()));
});

test('finished tasks leave the bus early beyond the per-UID and total caps; history keeps them', async () => {
  const m = manager(4, undefined, { retainedPerUser: 3, retainedTotal: 5 });
  m.registerKind(chatty as TaskKind);
  const removed: string[] = [];
  m.on('removed', (t) => removed.push(t.id));
  const run = async (uid: number): Promise<string> => {
    const t = m.submit('chatty', { ms: 0 }, user(uid));
    await t.wait();
    return t.id;
  };
  const mine: string[] = [];
  for (let i = 0; i < 5; i++) mine.push(await run(1000));
  expect(removed).toEqual(mine.slice(0, 2));
  expect(m.list().map((t) => t.id)).toEqual(mine.slice(2));
  const theirs: string[] = [];
  for (let i = 0; i < 3; i++) theirs.push(await run(1001));
  // Six finished on the bus, five allowed: the oldest of all leaves.
  expect(removed).toEqual(mine.slice(0, 3));
  expect(m.list().map((t) => t.id)).toEqual([...mine.slice(3), ...theirs]);
  expect(m.history(100)).toHaveLength(8);
  expect(() => m.find(mine[0])).toThrow(/no task/);
  expect(m.lookup(mine[0]).stored?.state).toBe('completed');
});

test('shutdown keeps the listeners of others: a task that still completes announces it', async () => {
  const m = manager(1);
  const stubborn: TaskKind = {
    name: 'stubborn',
    unit: 'steps',
    cancelable: true,
    resumable: true,
    async run(ctx) {
      ctx.checkpoint({ at: 1 });
      // Ignores the abort of the shutdown and finishes its last step.
      await new Promise((r) => setTimeout(r, 100));
      return { last: typed.u(1) };
    },
  };
  m.registerKind(stubborn);
  const t = m.submit('stubborn', {}, user(1000));
  const announced = new Promise<string>((resolve) => t.on('finished', (state) => resolve(state)));
  await sleep(10);
  await m.shutdown(1000);
  expect(await announced).toBe('completed');
});

test('a wait whose caller left is dropped; the task goes on', async () => {
  const m = manager(1);
  const g = gatedKind();
  m.registerKind(g.kind);
  const t = m.submit('gated', {}, user(1000));
  const gone = new AbortController();
  const waiting = t.wait(gone.signal);
  const staying = t.wait();
  expect(t.waiting).toBe(2);
  gone.abort(new Error('caller left'));
  await expect(waiting).rejects.toThrow(/caller left/);
  expect(t.waiting).toBe(1);
  g.release(t.id);
  await staying;
  expect(t.waiting).toBe(0);
});

test('pending waits are capped per client and per UID, and end with their client', () => {
  const waits = new WaitRegistry(2, 3);
  const a1 = waits.enter(':1.1', 1000);
  waits.enter(':1.1', 1000);
  expect(() => waits.enter(':1.1', 1000)).toThrow(/connection already waits on 2/);
  waits.enter(':1.2', 1000);
  expect(() => waits.enter(':1.3', 1000)).toThrow(/uid 1000 already waits on 3/);
  waits.enter(':1.3', 1001);
  expect(waits.size).toBe(4);
  a1.release();
  a1.release();
  expect(waits.size).toBe(3);
  waits.enter(':1.3', 1000);
  const dropped: unknown[] = [];
  const b = waits.enter(':1.4', 1002);
  b.signal.addEventListener('abort', () => dropped.push(b.signal.reason));
  waits.drop(':1.4');
  expect(dropped).toHaveLength(1);
  b.release();
  expect(waits.size).toBe(4);
});

test('a small result keeps what fits and names what it left out', () => {
  const small = { value: typed.s('42'), bits: typed.u(6) };
  expect(smallResult(small)).toBe(small);
  const big = {
    hashes: typed.aay(Array.from({ length: 200 }, () => Buffer.alloc(32))),
    mode: typed.s('light'),
  };
  expect(resultBytes(big)).toBeGreaterThan(SMALL_RESULT_BYTES);
  const cut = smallResult(big);
  expect(Object.keys(cut)).toEqual(['mode', 'omitted']);
  expect(cut.omitted.value).toEqual(['hashes']);
  expect(resultBytes(cut)).toBeLessThanOrEqual(SMALL_RESULT_BYTES);
});

test('Progress rises across phases: each phase fills its share, never going back', async () => {
  const m = manager();
  const seen: number[] = [];
  const twoPhases: TaskKind = {
    name: 'two-phases',
    unit: 'items',
    cancelable: true,
    async run(ctx) {
      ctx.setPhase('prepare', 10, 0.25);
      for (let i = 1; i <= 10; i++) ctx.progress(i);
      await tick();
      seen.push(m.find(ctx.id).progress);
      ctx.setPhase('work', 4);
      ctx.progress(2);
      seen.push(m.find(ctx.id).progress);
      ctx.progress(4);
      return {};
    },
  };
  m.registerKind(twoPhases);
  const task = m.submit('two-phases', {}, user(1000));
  await task.wait();
  expect(seen).toEqual([0.25, 0.625]);
  expect(task.progress).toBe(1);
  expect(task.phase).toBe('work');
});

test('history keeps the newest finished tasks up to its limit', async () => {
  const m = manager(1, 5);
  m.registerKind(chatty as TaskKind);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    const t = m.submit('chatty', { ms: 0 }, user(1000));
    ids.push(t.id);
    await t.wait();
  }
  const kept = m.history(100).map((r) => r.id);
  expect(kept.length).toBeGreaterThanOrEqual(5);
  expect(kept.length).toBeLessThan(12);
  expect(kept.slice(0, 5)).toEqual(ids.slice(-5).reverse());
});

test('cancelling a queued task aborts its signal, so a kind can release what it set up', async () => {
  const m = manager(1);
  m.registerKind(chatty as TaskKind);
  const running = m.submit('chatty', { ms: 200 }, user(1000));
  const queued = m.submit('chatty', { ms: 10 }, user(1000));
  queued.cancel();
  expect(queued.context.signal.aborted).toBe(true);
  expect(queued.state).toBe('cancelled');
  await running.wait();
});
