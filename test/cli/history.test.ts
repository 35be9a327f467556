import fs from 'node:fs';
import path from 'node:path';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, ROOT, TestClient } from '../helpers/client';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';
import { CtlProcess, isolatedEnv, runCtl, type CtlResult } from './run';

// Tasks that leave the bus (a short retention time) and tasks cut off by a daemon crash:
// vigilctl answers from the history and follows the daemon across a restart.

const RD = `${ROOT}/RandomData`;
const RD_IFACE = `${IFACE}RandomData`;

let bus: PrivateBus;
let daemon: DaemonProcess;
let configFile: string;
let stateDir: string;

const ctl = (...args: string[]): Promise<CtlResult> => runCtl(['--bus', bus.address, ...args]);
const daemonArgs = (): string[] => ['--slow-pace-ms', '20', '--config', configFile];

beforeAll(async () => {
  bus = await startPrivateBus();
  configFile = path.join(bus.dir, 'vigil.conf');
  fs.writeFileSync(configFile, '[daemon]\nretention_seconds = 1\n');
  daemon = await startDaemon(bus.address, { args: daemonArgs() });
  stateDir = daemon.stateDir;
});

afterAll(async () => {
  await daemon?.stop();
  await bus?.stop();
  if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
});

test('a task that left the bus: watch sees it go; task, wait and cancel answer from the history', async () => {
  const watch = new CtlProcess(['--bus', bus.address, 'watch'], isolatedEnv());
  await watch.until((p) => p.stderr.includes('watching'), 'ready line');
  const started = await ctl('random', 'slow', '5', '--no-wait');
  const id = started.stdout.trim();
  await watch.until((p) => p.stdout.includes(`- task ${id} left the bus`), 'removal line');
  expect(await watch.kill('SIGINT')).toBe(0);

  const task = await ctl('--json', 'task', id);
  expect(task.code).toBe(0);
  expect(JSON.parse(task.stdout)).toMatchObject({
    Id: id,
    OnBus: false,
    State: 'completed',
    Result: { bits: 5 },
  });
  expect((await ctl('task', id)).stdout).toMatch(/from the history; no longer on the bus/);

  const wait = await ctl('wait', id);
  expect(wait.code).toBe(0);
  expect(wait.stdout).toMatch(/^result: \d+\nbits: 5\n$/);

  const cancel = await ctl('cancel', id);
  expect(cancel.code).toBe(1);
  expect(cancel.stderr).toBe(
    `vigilctl: org.vigil.Vigil1.Error.Failed: cannot cancel task ${id}: it is completed\n`,
  );
});

test('after SIGKILL and a restart the cut-off task is interrupted: history shows it, wait exits 4; watch follows the restart', async () => {
  const client = await TestClient.connect(bus.address);
  const [id] = (await client.call(RD, RD_IFACE, 'slow', 'i', [4000])) as [string];
  client.close();
  const watch = new CtlProcess(['--bus', bus.address, 'watch'], isolatedEnv());
  await watch.until((p) => p.stdout.includes(`+ task ${id}`), 'the running task');

  await daemon.kill('SIGKILL');
  await watch.until((p) => p.stdout.includes('vigil left the bus'), 'daemon gone');
  daemon = await startDaemon(bus.address, { stateDir, args: daemonArgs() });
  await watch.until((p) => p.stdout.includes('vigil is on the bus'), 'daemon back');
  // The restarted daemon shows the interrupted task again (for its retention time).
  await watch.until(
    (p) => new RegExp(`^\\+ task ${id} slow-random interrupted`, 'm').test(p.stdout),
    'interrupted task listed',
  );
  expect(await watch.kill('SIGINT')).toBe(0);

  const history = await ctl('--json', 'history', '--limit', '0');
  const record = (JSON.parse(history.stdout) as Record<string, unknown>[]).find((r) => r.Id === id);
  expect(record).toMatchObject({ State: 'interrupted', Kind: 'slow-random' });

  const wait = await ctl('wait', id);
  expect(wait.code).toBe(4);
  expect(wait.stderr.trim().split('\n').pop()).toMatch(
    /^vigilctl: org\.vigil\.Vigil1\.Error\.\w+: /,
  );
});

test('when the bus itself goes away, watch says so in one line and exits 3', async () => {
  const watch = new CtlProcess(['--bus', bus.address, 'watch'], isolatedEnv());
  await watch.until((p) => p.stderr.includes('watching'), 'ready line');
  await bus.stop();
  expect(await watch.exited).toBe(3);
  const errors = watch.stderr.split('\n').filter((l) => l.startsWith('vigilctl: '));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/bus/);
});
