import fs from 'node:fs';
import path from 'node:path';
import { startPrivateBus } from '../helpers/bus';
import { IFACE, plain, ROOT } from '../helpers/client';
import { useBus } from '../helpers/fixture';
import { startDaemon, tempStateDir } from '../helpers/daemon';

const RD = `${ROOT}/RandomData`;
const RD_IFACE = `${IFACE}RandomData`;
const TASKS = `${ROOT}/Tasks`;
const TASK = `${IFACE}Task`;

const fx = useBus();

async function history(): Promise<Record<string, unknown>[]> {
  const [h] = (await fx.client.call(TASKS, `${IFACE}TaskManager`, 'GetHistory', 'u', [100])) as [
    unknown[],
  ];
  return h.map((e) => plain(e) as Record<string, unknown>);
}

test('after SIGKILL, history survives and the task that was running is interrupted', async () => {
  const stateDir = tempStateDir();
  let daemon = await startDaemon(fx.bus.address, { stateDir, args: ['--slow-pace-ms', '10'] });
  const [doneId] = (await fx.client.call(RD, RD_IFACE, 'slow', 'i', [4])) as [string];
  await fx.client.call(`${TASKS}/${doneId}`, TASK, 'Wait');
  const [runningId] = (await fx.client.call(RD, RD_IFACE, 'slow', 'i', [4000])) as [string];
  await new Promise((r) => setTimeout(r, 100));
  expect(await daemon.kill('SIGKILL')).toBe('SIGKILL');

  daemon = await startDaemon(fx.bus.address, { stateDir });
  try {
    const entries = await history();
    const done = entries.find((e) => e.Id === doneId);
    const cut = entries.find((e) => e.Id === runningId);
    expect(done).toMatchObject({ State: 'completed', Kind: 'slow-random' });
    expect(cut).toMatchObject({ State: 'interrupted', ErrorName: 'org.vigil.Vigil1.Error.Failed' });
    // The interrupted task is also on the bus for its retention time.
    expect(await fx.client.get(`${TASKS}/${runningId}`, TASK, 'State')).toBe('interrupted');
    const err = await fx.client.callError(`${TASKS}/${runningId}`, TASK, 'Wait');
    expect(err.type).toBe('org.vigil.Vigil1.Error.Failed');
  } finally {
    await daemon.stop();
  }
});

test('SIGTERM exits 0 within 5 s, records the running task and releases the name', async () => {
  const stateDir = tempStateDir();
  const daemon = await startDaemon(fx.bus.address, { stateDir });
  const [id] = (await fx.client.call(RD, RD_IFACE, 'slow', 'i', [100])) as [string];
  const started = Date.now();
  expect(await daemon.stop()).toBe(0);
  expect(Date.now() - started).toBeLessThan(5000);
  const [owned] = (await fx.client.busCall('NameHasOwner', 's', ['org.vigil.Vigil1'])) as [boolean];
  expect(owned).toBe(false);
  const again = await startDaemon(fx.bus.address, { stateDir });
  try {
    expect((await history()).find((e) => e.Id === id)).toMatchObject({ State: 'interrupted' });
  } finally {
    await again.stop();
  }
});

test('a second instance says "already running" and exits 1', async () => {
  const first = await startDaemon(fx.bus.address);
  try {
    const second = await startDaemon(fx.bus.address, { noWait: true });
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/already running/);
  } finally {
    await first.stop();
  }
});

test('with no bus reachable it says so and exits non-zero', async () => {
  const d = await startDaemon(`unix:path=${path.join(fx.bus.dir, 'nothing-here')}`, {
    noWait: true,
  });
  expect(await d.exited).toBe(3);
  expect(d.output()).toMatch(/cannot connect to the bus at unix:path=.*nothing-here/);
});

test('when the bus goes away the daemon logs it and exits non-zero', async () => {
  const own = await startPrivateBus();
  const d = await startDaemon(own.address);
  await own.stop();
  expect(await d.exited).toBe(3);
  expect(d.output()).toMatch(/lost the bus/);
});

test('a corrupt state database is reported and left in place', async () => {
  const stateDir = tempStateDir();
  const db = path.join(stateDir, 'vigil.db');
  const junk = Buffer.alloc(8192, 0x5a);
  fs.writeFileSync(db, junk);
  const d = await startDaemon(fx.bus.address, { stateDir, noWait: true });
  expect(await d.exited).toBe(4);
  expect(d.output()).toMatch(/state database .*vigil\.db.* (corrupt|not a database)/);
  expect(fs.readFileSync(db).equals(junk)).toBe(true);
});

test('an unwritable state directory is reported', async () => {
  const parent = tempStateDir();
  const blocker = path.join(parent, 'file');
  fs.writeFileSync(blocker, 'not a directory');
  const d = await startDaemon(fx.bus.address, {
    stateDir: path.join(blocker, 'state'),
    noWait: true,
  });
  expect(await d.exited).toBe(4);
  expect(d.output()).toMatch(/cannot create state directory/);
});

test('under systemd (JOURNAL_STREAM set) log lines carry their syslog priority', async () => {
  const d = await startDaemon(fx.bus.address, { env: { JOURNAL_STREAM: '8:1234' } });
  await d.stop();
  const lines = d.output().trim().split('\n');
  expect(lines.length).toBeGreaterThan(1);
  for (const line of lines) expect(line).toMatch(/^<[0-7]>/);
  expect(d.output()).toMatch(/^<5>vigil .* owns org\.vigil\.Vigil1/m);
});

test('bad command-line options exit 2 with a message', async () => {
  const d = await startDaemon(fx.bus.address, { args: ['--log-level', 'loud'], noWait: true });
  expect(await d.exited).toBe(2);
  expect(d.output()).toMatch(/--log-level must be one of/);
});
