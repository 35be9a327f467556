import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, plain, ROOT, TestClient, variant } from '../helpers/client';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';

const run = promisify(execFile);
const RD = `${ROOT}/RandomData`;
const RD_IFACE = `${IFACE}RandomData`;
const TASKS = `${ROOT}/Tasks`;
const TM = `${IFACE}TaskManager`;
const TASK = `${IFACE}Task`;
const NOBODY = 65534;

let bus: PrivateBus;
let daemon: DaemonProcess;
let client: TestClient;
let configFile: string;

async function slow(bits: number, c = client): Promise<string> {
  const [id] = (await c.call(RD, RD_IFACE, 'slow', 'i', [bits])) as [string];
  return `${TASKS}/${id}`;
}

/** Run gdbus as another UID (the bus lets every UID connect; the daemon does the checking). */
async function gdbusAs(uid: number, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout } = await run('setpriv', [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      'gdbus',
      'call',
      '-a',
      bus.address,
      '-d',
      'org.vigil.Vigil1',
      ...args,
    ]);
    return { ok: true, out: stdout };
  } catch (e) {
    return { ok: false, out: String((e as { stderr?: string }).stderr) };
  }
}

beforeAll(async () => {
  bus = await startPrivateBus(path.resolve(__dirname, '../../../test/helpers/multiuser-bus.conf'));
  configFile = path.join(bus.dir, 'vigil.conf');
  fs.writeFileSync(
    configFile,
    '[daemon]\nmax_running = 2\nretention_seconds = 2\nmax_queued_per_user = 4\n',
  );
  daemon = await startDaemon(bus.address, {
    args: ['--slow-pace-ms', '30', '--config', configFile],
  });
  client = await TestClient.connect(bus.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
});

describe('Task lifecycle', () => {
  test('Wait returns the result; Finished comes exactly once; Progress never decreases', async () => {
    const p = await slow(10);
    const signals = await client.subscribe({ path: p });
    const [result] = await client.call(p, TASK, 'Wait');
    const value = plain(result) as Record<string, unknown>;
    expect(BigInt(value.result as string) < 1024n).toBe(true);
    // A second Wait on a finished task answers at once with the same result.
    expect(plain((await client.call(p, TASK, 'Wait'))[0])).toEqual(value);
    await new Promise((r) => setTimeout(r, 100));
    const finished = signals.messages.filter((m) => m.member === 'Finished');
    expect(finished).toHaveLength(1);
    expect(finished[0].body[0]).toBe('completed');
    const progress = signals.messages
      .filter((m) => m.member === 'Progress')
      .map((m) => m.body[0] as number);
    expect(progress.length).toBeGreaterThan(0);
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]);
    const all = await client.getAll(p, TASK);
    expect(all).toMatchObject({
      State: 'completed',
      Progress: 1,
      ProgressValid: true,
      Done: 10n,
      Total: 10n,
      Unit: 'bits',
      Kind: 'slow-random',
      Cancelable: true,
      OwnerUid: process.getuid?.(),
      ErrorName: '',
    });
    expect(all.FinishTime as bigint).toBeGreaterThanOrEqual(all.StartTime as bigint);
    expect(all.StartTime as bigint).toBeGreaterThan(1_600_000_000_000_000n);
  });

  test('Cancel stops the work: Wait answers Cancelled and Done stops growing', async () => {
    const p = await slow(400);
    const waiting = client.callError(p, TASK, 'Wait');
    await new Promise((r) => setTimeout(r, 200));
    await client.call(p, TASK, 'Cancel');
    const err = await waiting;
    expect(err.type).toBe('org.vigil.Vigil1.Error.Cancelled');
    expect(await client.get(p, TASK, 'State')).toBe('cancelled');
    const done = (await client.get(p, TASK, 'Done')) as bigint;
    await new Promise((r) => setTimeout(r, 200));
    expect(await client.get(p, TASK, 'Done')).toBe(done);
    expect(done).toBeLessThan(400n);
    expect(await client.get(p, TASK, 'ErrorName')).toBe('org.vigil.Vigil1.Error.Cancelled');
  });

  test('Pause holds the work, Resume continues it', async () => {
    const p = await slow(60);
    await new Promise((r) => setTimeout(r, 150));
    await client.call(p, TASK, 'Pause');
    expect(await client.get(p, TASK, 'State')).toBe('paused');
    const held = (await client.get(p, TASK, 'Done')) as bigint;
    await new Promise((r) => setTimeout(r, 300));
    // At most the bit in flight when Pause arrived lands afterwards.
    expect((await client.get(p, TASK, 'Done')) as bigint).toBeLessThanOrEqual(held + 1n);
    const stillHeld = (await client.get(p, TASK, 'Done')) as bigint;
    await new Promise((r) => setTimeout(r, 200));
    expect(await client.get(p, TASK, 'Done')).toBe(stillHeld);
    await client.call(p, TASK, 'Resume');
    expect(await client.get(p, TASK, 'State')).toBe('running');
    await client.call(p, TASK, 'Wait');
    expect(await client.get(p, TASK, 'Done')).toBe(60n);
  });

  test('wrong states, unknown tasks and unsupported input get named errors', async () => {
    const p = await slow(200);
    let err = await client.callError(p, TASK, 'Resume');
    expect(err.type).toBe('org.vigil.Vigil1.Error.Failed');
    expect(err.text).toMatch(/running/);
    err = await client.callError(p, TASK, 'Input', 'a{sv}', [{ x: variant('u', 1) }]);
    expect(err.type).toBe('org.vigil.Vigil1.Error.NotSupported');
    await client.call(p, TASK, 'Cancel');
    await client.callError(p, TASK, 'Wait');
    err = await client.callError(p, TASK, 'Cancel');
    expect(err.type).toBe('org.vigil.Vigil1.Error.Failed');
    err = await client.callError(p, TASK, 'Pause');
    expect(err.type).toBe('org.vigil.Vigil1.Error.Failed');
    err = await client.callError(`${TASKS}/doesnotexist`, TASK, 'Cancel');
    expect(err.type).toBe('org.vigil.Vigil1.Error.NotFound');
    err = await client.callError(`${TASKS}/doesnotexist`, TASK, 'Wait');
    expect(err.type).toBe('org.vigil.Vigil1.Error.NotFound');
    err = await client.callError(TASKS, TM, 'GetHistory', 'u', [1_000_000]);
    expect(err.type).toBe('org.vigil.Vigil1.Error.InvalidArgument');
  });

  test('read-only properties refuse Set and keep their value', async () => {
    const p = await slow(5);
    await client.call(p, TASK, 'Wait');
    for (const [obj, iface, prop, value] of [
      [p, TASK, 'State', variant('s', 'completed')],
      [p, TASK, 'Progress', variant('d', 0.5)],
      [p, TASK, 'OwnerUid', variant('u', 0)],
      [TASKS, TM, 'MaxRunning', variant('u', 99)],
      [ROOT, `${IFACE}Daemon`, 'Version', variant('s', 'hacked')],
    ] as const) {
      const before = await client.get(obj, iface, prop);
      const err = await client.callError(obj, 'org.freedesktop.DBus.Properties', 'Set', 'ssv', [
        iface,
        prop,
        value,
      ]);
      expect(err.type).toBe('org.freedesktop.DBus.Error.PropertyReadOnly');
      expect(await client.get(obj, iface, prop)).toEqual(before);
    }
  });
});

describe('TaskManager', () => {
  test('queues beyond MaxRunning and starts queued tasks as slots free', async () => {
    expect(await client.get(TASKS, TM, 'MaxRunning')).toBe(2);
    const paths = [await slow(8), await slow(8), await slow(8)];
    expect(await client.get(paths[2], TASK, 'State')).toBe('queued');
    expect(await client.get(TASKS, TM, 'Queued')).toBe(1);
    expect(await client.get(TASKS, TM, 'Running')).toBe(2);
    const [listed] = (await client.call(TASKS, TM, 'ListTasks')) as [string[]];
    for (const p of paths) expect(listed).toContain(p);
    for (const p of paths) await client.call(p, TASK, 'Wait');
    expect(await client.get(paths[2], TASK, 'State')).toBe('completed');
    expect(await client.get(TASKS, TM, 'Queued')).toBe(0);
  });

  test('a UID over its unfinished-task cap gets LimitExceeded', async () => {
    const paths: string[] = [];
    for (let i = 0; i < 4; i++) paths.push(await slow(300));
    const err = await client.callError(RD, RD_IFACE, 'slow', 'i', [8]);
    expect(err.type).toBe('org.vigil.Vigil1.Error.LimitExceeded');
    for (const p of paths) await client.call(p, TASK, 'Cancel');
    // Once they are finished the same caller may submit again.
    const again = await slow(4);
    await client.call(again, TASK, 'Wait');
  });

  test('ObjectManager announces tasks and finished tasks leave after the retention time', async () => {
    const om = await client.subscribe({ path: ROOT, iface: 'org.freedesktop.DBus.ObjectManager' });
    const p = await slow(3);
    const added = await om.waitFor((m) => m.member === 'InterfacesAdded' && m.body[0] === p);
    expect(Object.keys(added.body[1] as object)).toEqual([TASK]);
    const [managed] = await client.call(
      ROOT,
      'org.freedesktop.DBus.ObjectManager',
      'GetManagedObjects',
    );
    expect(Object.keys(managed as object)).toContain(p);
    await client.call(p, TASK, 'Wait');
    const removed = await om.waitFor(
      (m) => m.member === 'InterfacesRemoved' && m.body[0] === p,
      10000,
    );
    expect(removed.body[1]).toEqual([TASK]);
    const err = await client.callError(p, TASK, 'Wait');
    expect(err.type).toBe('org.vigil.Vigil1.Error.NotFound');
    const [history] = (await client.call(TASKS, TM, 'GetHistory', 'u', [50])) as [unknown[]];
    const ids = history.map((h) => (plain(h) as { Id: string }).Id);
    expect(ids).toContain(path.basename(p));
  });

  test('GetHistory lists finished tasks newest first', async () => {
    const a = await slow(2);
    await client.call(a, TASK, 'Wait');
    const b = await slow(2);
    await client.call(b, TASK, 'Wait');
    const [history] = (await client.call(TASKS, TM, 'GetHistory', 'u', [2])) as [unknown[]];
    const entries = history.map((h) => plain(h) as Record<string, unknown>);
    expect(entries.map((e) => e.Id)).toEqual([path.basename(b), path.basename(a)]);
    expect(entries[0]).toMatchObject({ Kind: 'slow-random', State: 'completed' });
    expect((entries[0].Result as Record<string, unknown>).result).toMatch(/^[0-3]$/);
  });
});

describe('progress batching', () => {
  test('a task reporting ~1000 times a second sends at most 10 Progress signals a second', async () => {
    // A separate daemon whose slow task draws a bit every millisecond.
    const fast = await startDaemon(bus.address.replace(/,guid=.*/, ''), {
      args: ['--slow-pace-ms', '1'],
      noWait: true,
    });
    // The name is taken by the main daemon: the second one must refuse and exit 1.
    expect(await fast.exited).toBe(1);
    expect(fast.output()).toMatch(/already running/);

    // Reuse the main daemon's queue: restart it with a 1 ms pace on the same state dir.
    await daemon.stop();
    daemon = await startDaemon(bus.address, {
      stateDir: daemon.stateDir,
      args: ['--slow-pace-ms', '1', '--config', configFile],
    });
    const p = await slow(3000);
    const signals = await client.subscribe({ path: p });
    const started = Date.now();
    await client.call(p, TASK, 'Wait');
    const seconds = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 50));
    const progress = signals.count((m) => m.member === 'Progress');
    const changed = signals.count((m) => m.member === 'PropertiesChanged');
    expect(seconds).toBeGreaterThan(1);
    expect(progress).toBeGreaterThan(3);
    // 10 per second, plus the flushes forced by state changes (start and finish).
    expect(progress).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 3);
    expect(changed).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 3);
  });
});

describe('owner checks', () => {
  test('another UID cannot cancel, pause or feed a task; root can steer anyone’s', async () => {
    const p = await slow(2000);
    for (const method of ['Cancel', 'Pause', 'Resume']) {
      const r = await gdbusAs(NOBODY, ['-o', p, '-m', `${TASK}.${method}`]);
      expect(r.ok).toBe(false);
      expect(r.out).toMatch(/org\.vigil\.Vigil1\.Error\.AccessDenied/);
    }
    const r = await gdbusAs(NOBODY, ['-o', p, '-m', `${TASK}.Input`, '{}']);
    expect(r.out).toMatch(/AccessDenied/);
    // Each refusal is logged with the caller's UID.
    expect(daemon.output()).toMatch(
      /access denied: uid 65534 may not cancel task [0-9a-f]+ of uid 0/,
    );
    expect(await client.get(p, TASK, 'State')).toBe('running');
    // Anyone may read it and wait for it.
    const read = await gdbusAs(NOBODY, [
      '-o',
      p,
      '-m',
      'org.freedesktop.DBus.Properties.Get',
      TASK,
      'State',
    ]);
    expect(read.out).toMatch(/running/);

    // A task owned by UID 65534 carries that owner, and root (this test) may cancel it.
    const mine = await gdbusAs(NOBODY, ['-o', RD, '-m', `${RD_IFACE}.slow`, '4000']);
    expect(mine.ok).toBe(true);
    const id = /'([0-9a-f]+)'/.exec(mine.out)?.[1] as string;
    expect(await client.get(`${TASKS}/${id}`, TASK, 'OwnerUid')).toBe(NOBODY);
    const own = await gdbusAs(NOBODY, ['-o', `${TASKS}/${id}`, '-m', `${TASK}.Pause`]);
    expect(own.ok).toBe(true);
    await client.call(`${TASKS}/${id}`, TASK, 'Cancel');
    await client.call(p, TASK, 'Cancel');
    expect(await client.get(`${TASKS}/${id}`, TASK, 'State')).toBe('cancelled');
  });
});
