import { setImmediate as tick } from 'node:timers/promises';
import { openStateDatabase } from '../../src/core/database';
import { typed } from '../../src/core/typed';
import { TaskHistory } from '../../src/tasks/history';
import { TaskManager } from '../../src/tasks/manager';
import type { TaskKind } from '../../src/tasks/types';
import { tempStateDir } from '../helpers/daemon';

/** The task machinery without a bus: what the D-Bus layer translates. */
function manager(maxRunning = 1, historyLimit?: number): TaskManager {
  return new TaskManager({
    maxRunning,
    retentionMs: 60_000,
    maxQueuedPerUser: 10,
    historyLimit,
    history: new TaskHistory(openStateDatabase(tempStateDir())),
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
  const task = m.submit('chatty', { ms: 1500 }, 1000);
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
test('wrong states and queue order', async () => {
  const m = manager(1);
  m.registerKind(chatty as TaskKind);
  const a = m.submit('chatty', { ms: 300 }, 1000);
  const b = m.submit('chatty', { ms: 10 }, 1001);
  expect([a.state, b.state]).toEqual(['running', 'queued']);
  expect(() => a.resume()).toThrow(/running/);
  a.pause();
  expect(a.state).toBe('paused');
  a.resume();
  b.cancel();
  expect(b.state).toBe('cancelled');
  await expect(b.wait()).rejects.toThrow(/cancelled before it started/);
  await a.wait();
  expect(() => a.cancel()).toThrow(/completed/);
  expect(m.history(10).map((r) => r.id)).toEqual([a.id, b.id]);
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
  const task = m.submit('two-phases', {}, 1000);
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
    const t = m.submit('chatty', { ms: 0 }, 1000);
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
  const running = m.submit('chatty', { ms: 200 }, 1000);
  const queued = m.submit('chatty', { ms: 10 }, 1000);
  queued.cancel();
  expect(queued.context.signal.aborted).toBe(true);
  expect(queued.state).toBe('cancelled');
  await running.wait();
});
