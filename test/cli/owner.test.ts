import { IFACE, ROOT } from '../helpers/client';
import { isolatedEnv, runCtl, type CtlResult } from './run';
import { MULTIUSER_BUS_CONFIG, useDaemon } from '../helpers/fixture';

const fx = useDaemon({ busConfig: MULTIUSER_BUS_CONFIG, args: ['--slow-pace-ms', '20'] });

// Two UIDs on one bus: vigilctl run as an ordinary user sees the daemon's owner checks as
// one-line AccessDenied errors, and its own tasks carry its UID.

const NOBODY = 65534;
const TASK_IFACE = `${IFACE}Task`;

const ctlAs = (uid: number | undefined, ...args: string[]): Promise<CtlResult> =>
  runCtl(['--bus', fx.bus.address, ...args], isolatedEnv({ HOME: '/tmp' }), uid);

test('another user cannot cancel, pause or resume root’s task: AccessDenied, exit 1, task untouched', async () => {
  const [id] = (await fx.client.call(
    `${ROOT}/RandomData`,
    `${IFACE}RandomData`,
    'slow',
    'i',
    [500],
  )) as [string];
  for (const action of ['cancel', 'pause', 'resume']) {
    const r = await ctlAs(NOBODY, action, id);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vigilctl: org\.vigil\.Vigil1\.Error\.AccessDenied: .+\n$/);
  }
  expect(await fx.client.get(`${ROOT}/Tasks/${id}`, TASK_IFACE, 'State')).not.toMatch(
    /paused|cancel/,
  );
  // Reading is open to everyone.
  const seen = await ctlAs(NOBODY, '--json', 'task', id);
  expect(JSON.parse(seen.stdout)).toMatchObject({ Id: id, OwnerUid: 0 });
  expect((await ctlAs(undefined, 'cancel', id)).code).toBe(0);
});

test('a user’s own task carries its UID and the user may pause and cancel it', async () => {
  const started = await ctlAs(NOBODY, 'random', 'slow', '500', '--no-wait');
  expect(started.code).toBe(0);
  const id = started.stdout.trim();
  const task = JSON.parse((await ctlAs(NOBODY, '--json', 'task', id)).stdout) as {
    OwnerUid: number;
  };
  expect(task.OwnerUid).toBe(NOBODY);
  for (;;) {
    // it starts as soon as a slot is free; pause needs it running
    const state = await fx.client.get(`${ROOT}/Tasks/${id}`, TASK_IFACE, 'State');
    if (state === 'running') break;
    expect(state).toBe('queued');
    await new Promise((r) => setTimeout(r, 10));
  }
  expect((await ctlAs(NOBODY, 'pause', id)).stdout).toBe(`${id} paused\n`);
  expect((await ctlAs(NOBODY, 'cancel', id)).code).toBe(0);
  expect((await ctlAs(NOBODY, 'wait', id)).code).toBe(4);
});
