/**
 * The history in bounded rows (issue 10, "History stores whole payloads"): a database written
 * by the vigil before schema versions (test/fixtures/history-v0.sql, dumped from that build by
 * the script beside it) is migrated at start; the byte budget holds; a newer schema is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openStateDatabase } from '../../src/core/database';
import { typed } from '../../src/core/typed';
import { TaskHistory, type TaskSummary } from '../../src/tasks/history';
import { smallResult } from '../../src/tasks/summary';
import { IFACE, plain, ROOT } from '../helpers/client';
import { useBus } from '../helpers/fixture';
import { startDaemon, tempStateDir } from '../helpers/daemon';

const FIXTURE = path.resolve(__dirname, '../../../test/fixtures/history-v0.sql');
const TASKS = `${ROOT}/Tasks`;
const TM = `${IFACE}TaskManager`;
const TASK = `${IFACE}Task`;
const KEY = Buffer.from('test key 000');
/** Ids in the fixture. */
const V0 = {
  completed: '17ee2d5590ba',
  cancelled: '93c76332e913',
  batch: 'f9074b8680d8',
  interrupted: 'f22ad2828a61',
  search: 'bb5652668361',
};

/** A state directory holding the schema-0 fixture plus one batch row with 4 MiB of params. */
const fx = useBus();

function schema0StateDir(): string {
  const dir = tempStateDir();
  const db = new Database(path.join(dir, 'vigil.db'));
  db.exec(fs.readFileSync(FIXTURE, 'utf8'));
  const inputs = Array.from({ length: 64 }, (_, i) => Buffer.alloc(65536, i).toString('hex'));
  db.prepare(
    `INSERT INTO tasks VALUES ('b16b16b16b16', 'randomx-batch', 0, 'completed', ?, ?, '', '',
      'hashing', 64, 64, 1, 1796170000000, 1796170000001, 1796170000002, NULL)`,
  ).run(
    JSON.stringify({ key: KEY.toString('hex'), inputs, mode: 'light', threads: 2 }),
    JSON.stringify({ mode: { sig: 's', value: 'light' } }),
  );
  db.close();
  return dir;
}

const dbBytes = (dir: string): number =>
  fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('vigil.db'))
    .reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);

test('a schema-0 database is migrated: summaries, results, the search resumed, space given back', async () => {
  const stateDir = schema0StateDir();
  const before = dbBytes(stateDir);
  expect(before).toBeGreaterThan(8 * 1024 * 1024);
  const daemon = await startDaemon(fx.bus.address, { stateDir });
  try {
    expect(daemon.output()).toMatch(/task history in .*vigil\.db: 6 tasks migrated to schema 1/);
    const [history] = (await fx.client.call(TASKS, TM, 'GetHistory', 'u', [0])) as [unknown[]];
    const records = Object.fromEntries(
      history.map((h) => plain(h) as { Id: string }).map((r) => [r.Id, r]),
    );
    expect(records[V0.completed]).toMatchObject({ State: 'completed', Kind: 'slow-random' });
    expect(records[V0.cancelled]).toMatchObject({
      State: 'cancelled',
      ErrorName: `${IFACE}Error.Cancelled`,
    });
    expect(records[V0.interrupted]).toMatchObject({ State: 'interrupted' });
    expect(records.b16b16b16b16).toMatchObject({ State: 'completed', Result: { mode: 'light' } });
    // The batch's result survived, and is RandomX's own answer for its first input.
    const [batch] = (await fx.client.call(TASKS, TM, 'GetTask', 's', [V0.batch])) as [unknown];
    const hashes = (plain(batch) as { Result: { hashes: Buffer[] } }).Result.hashes;
    expect(hashes).toHaveLength(4);
    const [hash] = (await fx.client.call(`${ROOT}/RandomX`, `${IFACE}RandomX`, 'Hash', 'ayay', [
      KEY,
      Buffer.from([1]),
    ])) as [Buffer];
    expect(hashes[0].equals(hash)).toBe(true);
    // The search that was running resumed under its id (from its checkpoint).
    const search = `${TASKS}/${V0.search}`;
    expect(['queued', 'running']).toContain(await fx.client.get(search, TASK, 'State'));
    await fx.client.call(search, TASK, 'Cancel');
    const err = await fx.client.callError(search, TASK, 'Wait');
    expect(err.type).toBe(`${IFACE}Error.Cancelled`);
  } finally {
    await daemon.stop();
  }
  const db = new Database(path.join(stateDir, 'vigil.db'), { readonly: true });
  try {
    expect(
      db.prepare("SELECT value FROM vigil_meta WHERE key = 'tasks_schema_version'").get(),
    ).toEqual({ value: '1' });
    const columns = (db.pragma('table_info(tasks)') as { name: string }[]).map((c) => c.name);
    expect(columns).not.toContain('params');
    expect(db.prepare('SELECT COUNT(*) AS n FROM task_payloads').get()).toEqual({ n: 0 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM tasks').get()).toEqual({ n: 6 });
    // Other capabilities' tables are left as they were.
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'wol_hosts'").get()).toEqual({
      name: 'wol_hosts',
    });
  } finally {
    db.close();
  }
  expect(dbBytes(stateDir)).toBeLessThan(before / 16);
}, 60_000);

test('a database of a newer schema is refused with exit 4, its history untouched', async () => {
  const stateDir = tempStateDir();
  const db = openStateDatabase(stateDir);
  new TaskHistory(db);
  db.prepare("UPDATE vigil_meta SET value = '2' WHERE key = 'tasks_schema_version'").run();
  db.close();
  const d = await startDaemon(fx.bus.address, { stateDir, noWait: true });
  expect(await d.exited).toBe(4);
  expect(d.output()).toMatch(/holds task history schema 2, newer than this vigil's 1/);
  const after = new Database(path.join(stateDir, 'vigil.db'), { readonly: true });
  expect(
    after.prepare("SELECT value FROM vigil_meta WHERE key = 'tasks_schema_version'").get(),
  ).toEqual({ value: '2' });
  after.close();
});

function summary(id: string, finishTime: number, result = {}): TaskSummary {
  return {
    id,
    kind: 'randomx-batch',
    ownerUid: 0,
    privileged: true,
    state: 'completed',
    result: smallResult(result),
    errorName: '',
    errorMessage: '',
    phase: '',
    done: 0,
    total: 0,
    progress: 1,
    createdTime: finishTime,
    startTime: finishTime,
    finishTime,
  };
}

test('the byte budget drops the oldest full results first, then the oldest summaries', () => {
  const db = openStateDatabase(tempStateDir());
  const history = new TaskHistory(db);
  for (let i = 0; i < 40; i++) {
    const full = { hashes: typed.aay([Buffer.alloc(50_000, i)]), mode: typed.s('light') };
    const s = summary(`t${i}`, 1000 + i, full);
    history.insert(s);
    history.save(s, full);
  }
  expect(history.bytes()).toBeGreaterThan(40 * 100_000);
  history.prune({ maxRows: 1000, maxBytes: 1024 * 1024 });
  expect(history.bytes()).toBeLessThanOrEqual(1024 * 1024);
  // Every summary stays; only the newest full results do.
  expect(history.recent(100)).toHaveLength(40);
  expect(history.get('t39')?.fullResult?.hashes).toBeDefined();
  expect(history.get('t0')?.fullResult).toBeUndefined();
  expect(history.get('t0')?.result).toEqual({
    mode: typed.s('light'),
    omitted: typed.as(['hashes']),
  });
  history.prune({ maxRows: 1000, maxBytes: 4000 });
  const kept = history.recent(100).map((r) => r.id);
  expect(kept.length).toBeGreaterThan(0);
  expect(kept.length).toBeLessThan(40);
  expect(kept[0]).toBe('t39');
  expect(history.bytes()).toBeLessThanOrEqual(4000);
});

test('params are stored only for resumable kinds and only until the task finishes', () => {
  const db = openStateDatabase(tempStateDir());
  const history = new TaskHistory(db);
  const running = { ...summary('r1', 0), state: 'running' as const };
  history.insert(running, { blob: '00'.repeat(76) });
  history.saveCheckpoint('r1', { next_nonce: 5 }, 5, 0.1);
  expect(history.unfinished()).toMatchObject([
    { id: 'r1', params: { blob: '00'.repeat(76) }, checkpoint: { next_nonce: 5 }, done: 5 },
  ]);
  history.save({ ...running, state: 'completed', finishTime: 5 });
  expect(history.unfinished()).toEqual([]);
  expect(db.prepare('SELECT COUNT(*) AS n FROM task_payloads').get()).toEqual({ n: 0 });
});
