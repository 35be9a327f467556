/**
 * Heavy jobs and the people who read about them (issue 10 "History stores whole payloads",
 * issue 12 "Heavy readers", "Clients break"): 4 MiB HashBatch jobs leave a bounded history;
 * another user reading it gets summaries under a byte cap; the owner gets the full result;
 * `vigilctl watch` copes with big results on the bus.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { IFACE, plain, ROOT } from '../helpers/client';
import { startDaemon, tempStateDir, type DaemonProcess } from '../helpers/daemon';
import { MULTIUSER_BUS_CONFIG, useBus } from '../helpers/fixture';
import { CtlProcess, isolatedEnv, runCtl } from '../cli/run';

const run = promisify(execFile);
const DRIVER = path.resolve(__dirname, '../../../test/helpers/hashbatch.py');
const TASKS = `${ROOT}/Tasks`;
const TM = `${IFACE}TaskManager`;
const TASK = `${IFACE}Task`;
const NOBODY = 65534;

const fx = useBus(MULTIUSER_BUS_CONFIG);

interface Driven {
  ids: string[];
  completed: string[];
}

async function hashBatches(
  jobs: number,
  inputs: number,
  bytes: number,
  complete: number,
): Promise<Driven> {
  const args = [DRIVER, fx.bus.address, jobs, inputs, bytes, complete].map(String);
  const { stdout } = await run('/usr/bin/python3', args, { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as Driven;
}

async function daemonWith(config: string): Promise<DaemonProcess> {
  const stateDir = tempStateDir();
  const file = path.join(stateDir, 'vigil.conf');
  fs.writeFileSync(file, `[daemon]\nmax_running = 1\n${config}[randomx]\nthreads = 2\n`);
  return startDaemon(fx.bus.address, { stateDir, args: ['--config', file] });
}

const dbFileBytes = (dir: string): number => fs.statSync(path.join(dir, 'vigil.db')).size;

test('the byte budget holds under 50 HashBatch jobs of 4 MiB', async () => {
  const budget = 64 * 1024;
  const daemon = await daemonWith(`history_max_bytes = ${budget}\nhistory_limit = 30\n`);
  let driven: Driven;
  try {
    driven = await hashBatches(50, 64, 65536, 2);
    expect(driven.ids).toHaveLength(50);
    const [history] = (await fx.client.call(TASKS, TM, 'GetHistory', 'u', [0])) as [unknown[]];
    const ids = history.map((h) => (plain(h) as { Id: string }).Id);
    // The newest are kept (the row count and the byte budget both prune).
    expect(ids.length).toBeLessThanOrEqual(30);
    expect(ids.slice(0, 2)).toEqual(driven.completed.slice().reverse());
  } finally {
    await daemon.stop();
  }
  // After a clean stop the database is one file, and 200 MiB of params went through it.
  expect(fs.existsSync(path.join(daemon.stateDir, 'vigil.db-wal'))).toBe(false);
  const size = dbFileBytes(daemon.stateDir);
  process.stdout.write(`history database after 50 jobs of 4 MiB: ${size} bytes\n`);
  expect(size).toBeLessThan(budget * 2);
}, 180_000);

describe('another user reading big tasks', () => {
  let daemon: DaemonProcess;
  let driven: Driven;
  let big: string[];

  beforeAll(async () => {
    daemon = await daemonWith('');
    // A few dozen 4 MiB jobs, then two whose results are far over what the bus object shows.
    driven = await hashBatches(24, 64, 65536, 0);
    big = (await hashBatches(2, 160, 64, 2)).completed;
  }, 180_000);

  afterAll(async () => {
    await daemon?.stop();
  });

  /** gdbus as nobody; its output parsed as a GVariant text by the test is not needed. */
  const asNobody = async (args: string[]): Promise<string> => {
    const { stdout } = await run(
      'gdbus',
      ['call', '-a', fx.bus.address, '-d', 'org.vigil.Vigil1', ...args],
      { uid: NOBODY, gid: NOBODY, maxBuffer: 64 << 20 },
    );
    return stdout;
  };

  test('GetHistory by another UID: summaries only, small, quick', async () => {
    const started = Date.now();
    const reply = await asNobody(['-o', TASKS, '-m', `${TM}.GetHistory`, '0']);
    const took = Date.now() - started;
    expect(reply.length).toBeLessThan(256 * 1024);
    expect(took).toBeLessThan(5000);
    for (const id of [...driven.ids, ...big]) expect(reply).toContain(`'${id}'`);
    // The big results are named, not given.
    expect(reply).toContain("'omitted': <['hashes']>");
    const [history] = (await fx.client.call(TASKS, TM, 'GetHistory', 'u', [0])) as [unknown[]];
    for (const entry of history.map((h) => plain(h) as { Id: string; Result: object })) {
      if (big.includes(entry.Id)) {
        expect(entry.Result).toMatchObject({ mode: 'light', omitted: ['hashes'] });
      }
    }
  });

  test('the full result is for the owner: Wait and GetTask; others get the summary', async () => {
    const id = big[0];
    const [mine] = (await fx.client.call(TASKS, TM, 'GetTask', 's', [id])) as [unknown];
    const full = plain(mine) as { Result: { hashes: Buffer[] }; OnBus: boolean; OwnerUid: number };
    expect(full).toMatchObject({ OnBus: true, OwnerUid: 0 });
    expect(full.Result.hashes).toHaveLength(160);
    const [waited] = (await fx.client.call(`${TASKS}/${id}`, TASK, 'Wait')) as [unknown];
    expect((plain(waited) as { hashes: Buffer[] }).hashes).toHaveLength(160);
    // The Task object everybody sees carries the summary.
    expect(plain(await fx.client.get(`${TASKS}/${id}`, TASK, 'Result'))).toMatchObject({
      omitted: ['hashes'],
    });
    const theirs = await asNobody(['-o', TASKS, '-m', `${TM}.GetTask`, id]);
    expect(theirs).toContain("'omitted': <['hashes']>");
    expect(theirs).not.toContain("'hashes': <");
    const waitedByNobody = await asNobody(['-o', `${TASKS}/${id}`, '-m', `${TASK}.Wait`]);
    expect(waitedByNobody).toContain("'omitted': <['hashes']>");
    const unknown = await fx.client.callError(TASKS, TM, 'GetTask', 's', ['0123456789ab']);
    expect(unknown.type).toBe(`${IFACE}Error.NotFound`);
  });

  test('vigilctl watch and tasks with big tasks on the bus', async () => {
    const watch = new CtlProcess(['--bus', fx.bus.address, 'watch'], isolatedEnv());
    await watch.until((p) => p.stderr.includes('watching'), 'ready line');
    for (const id of big) expect(watch.stdout).toContain(`+ task ${id} randomx-batch completed`);
    const [one] = (await hashBatches(1, 160, 64, 1)).completed;
    await watch.until(
      (p) => new RegExp(`^= task ${one} randomx-batch completed .*omitted=`, 'm').test(p.stdout),
      'finished line',
    );
    expect(await watch.kill('SIGINT')).toBe(0);
    const tasks = await runCtl(['--bus', fx.bus.address, '--json', 'tasks'], isolatedEnv());
    expect(tasks.code).toBe(0);
    const listed = JSON.parse(tasks.stdout) as { Id: string }[];
    expect(listed.map((t) => t.Id)).toEqual(expect.arrayContaining([...big, one]));
    const [objects] = await fx.client.call(
      ROOT,
      'org.freedesktop.DBus.ObjectManager',
      'GetManagedObjects',
    );
    expect(
      JSON.stringify(plain(objects), (_k, v: unknown) => (typeof v === 'bigint' ? 0 : v)).length,
    ).toBeLessThan(listed.length * 8192);
  }, 60_000);
});
