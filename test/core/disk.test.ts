/**
 * A failing disk (issue 13, "A full disk loses results and wedges the queue"): the state
 * directory on a tiny tmpfs this test mounts (root), filled to the last byte. Nothing may be
 * lost, no slot kept, nothing hidden; and a read-only state directory is refused at start.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { IFACE, plain, ROOT } from '../helpers/client';
import { useBus } from '../helpers/fixture';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';

const RD = `${ROOT}/RandomData`;
const RD_IFACE = `${IFACE}RandomData`;
const TASKS = `${ROOT}/Tasks`;
const TM = `${IFACE}TaskManager`;
const TASK = `${IFACE}Task`;
const DAEMON = `${IFACE}Daemon`;

const mounts: string[] = [];

const fx = useBus();

function tmpfs(size: string): string {
  const dir = fs.mkdtempSync('/tmp/vigil-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** Write zeros until the file system says ENOSPC. */
function fill(file: string): void {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(4096);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

afterAll(async () => {
  for (const dir of mounts) {
    execFileSync('umount', ['-l', dir]);
    fs.rmdirSync(dir);
  }
});

async function slow(bits: number): Promise<string> {
  const [id] = (await fx.client.call(RD, RD_IFACE, 'slow', 'i', [bits])) as [string];
  return id;
}

describe('the state directory on a full disk', () => {
  let daemon: DaemonProcess;
  let mount: string;

  beforeAll(async () => {
    mount = tmpfs('2m');
    const config = path.join(mount, 'vigil.conf');
    fs.writeFileSync(config, '[daemon]\nretention_seconds = 1\nmax_running = 2\n');
    daemon = await startDaemon(fx.bus.address, {
      stateDir: path.join(mount, 'state'),
      args: ['--slow-pace-ms', '50', '--config', config],
    });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  test('no result is lost, slots free, Degraded says why, and the history is written once space returns', async () => {
    const degraded = await fx.client.subscribe({ path: ROOT, member: 'PropertiesChanged' });
    const slowResults = await fx.client.subscribe({ path: RD, member: 'slow_result' });
    const a = await slow(20);
    const b = await slow(30);
    const finished = await fx.client.subscribe({ iface: TASK, member: 'Finished' });
    const filler = path.join(mount, 'filler');
    fill(filler);

    // Both finish in full: Wait, Finished, slow_result, their slots.
    const [resultA] = await fx.client.call(`${TASKS}/${a}`, TASK, 'Wait');
    const valueA = (plain(resultA) as { result: string }).result;
    await fx.client.call(`${TASKS}/${b}`, TASK, 'Wait');
    for (const id of [a, b]) {
      await finished.waitFor((m) => m.path === `${TASKS}/${id}` && m.body[0] === 'completed');
      await slowResults.waitFor((m) => m.body[0] === id);
    }
    expect(await fx.client.get(TASKS, TM, 'Running')).toBe(0);
    const reason = String(await fx.client.get(ROOT, DAEMON, 'Degraded'));
    expect(reason).toMatch(
      /^cannot write the task history to .*\/state\/vigil\.db: ENOSPC \(SQLITE_FULL\): /,
    );
    await degraded.waitFor((m) => m.body[0] === DAEMON);
    // Logged once, not once per write.
    expect(
      daemon
        .output()
        .split('\n')
        .filter((l) => l.includes(reason)),
    ).toHaveLength(1);

    // A task that cannot be recorded is refused, and none is left behind.
    const [before] = (await fx.client.call(TASKS, TM, 'ListTasks')) as [string[]];
    const refused = await fx.client.callError(RD, RD_IFACE, 'slow', 'i', [4]);
    expect(refused.type).toBe(`${IFACE}Error.Failed`);
    expect(refused.text).toMatch(/the task was not created: .*ENOSPC/);
    expect((await fx.client.call(TASKS, TM, 'ListTasks'))[0]).toEqual(before);
    expect(await fx.client.get(TASKS, TM, 'Queued')).toBe(0);

    // Past its retention time the unrecorded result stays on the bus.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await fx.client.get(`${TASKS}/${a}`, TASK, 'State')).toBe('completed');

    // Space again: the writes land, Degraded clears, and only then does retention start.
    fs.unlinkSync(filler);
    await degraded.waitFor(
      (m) => m.body[0] === DAEMON && (plain(m.body[1]) as { Degraded?: string }).Degraded === '',
      10_000,
    );
    expect(daemon.output()).toMatch(/task history writes to .*vigil\.db work again/);
    const [history] = (await fx.client.call(TASKS, TM, 'GetHistory', 'u', [10])) as [unknown[]];
    const records = history.map((h) => plain(h) as { Id: string; State: string; Result: object });
    expect(records.find((r) => r.Id === a)).toMatchObject({
      State: 'completed',
      Result: { result: valueA, bits: 20 },
    });
    expect(records.find((r) => r.Id === b)).toMatchObject({ State: 'completed' });
    const gone = await fx.client.subscribe({ path: ROOT, member: 'InterfacesRemoved' });
    await gone.waitFor((m) => m.body[0] === `${TASKS}/${a}`, 5000);
    const again = await slow(2);
    await fx.client.call(`${TASKS}/${again}`, TASK, 'Wait');
  }, 60_000);
});

test('a read-only state directory with unfinished tasks exits 4 with one line', async () => {
  const mount = tmpfs('8m');
  const stateDir = path.join(mount, 'state');
  const first = await startDaemon(fx.bus.address, { stateDir });
  await slow(4000);
  await first.kill('SIGKILL');
  execFileSync('mount', ['-o', 'remount,ro', mount]);
  const files = fs.readdirSync(stateDir).sort();
  const d = await startDaemon(fx.bus.address, { stateDir, noWait: true });
  expect(await d.exited).toBe(4);
  const lines = d.output().trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/state database .*vigil\.db is corrupt or unwritable \(.*readonly/);
  expect(fs.readdirSync(stateDir).sort()).toEqual(files);
  execFileSync('mount', ['-o', 'remount,rw', mount]);
}, 30_000);
