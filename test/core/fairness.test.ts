/**
 * Run slots under a hostile user (issue 13, "Run slots held forever"): a UID that fills its
 * queue and pauses its running tasks must not keep root's or anyone else's task waiting.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { IFACE, ROOT } from '../helpers/client';
import { MULTIUSER_BUS_CONFIG, useDaemon } from '../helpers/fixture';
import { runHostile } from '../helpers/hostile';

const run = promisify(execFile);
const HOG = 65534;
const OTHER = 5; // games: a second unprivileged user with a passwd entry (the bus wants one)
const RD = `${ROOT}/RandomData`;
const TASKS = `${ROOT}/Tasks`;
const TM = `${IFACE}TaskManager`;
const TASK = `${IFACE}Task`;

const configFile = path.join(fs.mkdtempSync('/tmp/vigil-fair-'), 'vigil.conf');
fs.writeFileSync(configFile, '[daemon]\nmax_running = 2\nmax_queued_per_user = 64\n');
const fx = useDaemon({
  busConfig: MULTIUSER_BUS_CONFIG,
  args: ['--slow-pace-ms', '100', '--config', configFile],
});

interface Hog {
  ids: string[];
  refused: string[];
  paused: string[];
}

test('pause-to-hog: 64 queued and 2 paused tasks of one UID keep no one else waiting', async () => {
  const hog = await runHostile<Hog>(HOG, ['hog', fx.bus.address, 66, 20, 2]);
  // The per-UID cap holds: 64 accepted, the rest refused.
  expect(hog.ids).toHaveLength(64);
  expect(hog.refused).toEqual(Array(2).fill('org.vigil.Vigil1.Error.LimitExceeded'));
  expect(hog.paused).toHaveLength(2);
  for (const id of hog.paused) {
    expect(await fx.client.get(`${TASKS}/${id}`, TASK, 'State')).toBe('paused');
  }
  // Paused tasks hold no slot, and the hog never holds every slot: one is free for root.
  const [rootId] = (await fx.client.call(RD, `${IFACE}RandomData`, 'slow', 'i', [1])) as [string];
  expect(await fx.client.get(`${TASKS}/${rootId}`, TASK, 'State')).toBe('running');
  await fx.client.call(`${TASKS}/${rootId}`, TASK, 'Wait');

  // Another unprivileged UID takes its turn before the hog's 61 other queued tasks.
  const other = await runHostile<Hog>(OTHER, ['hog', fx.bus.address, 1, 1, 0]);
  expect(await fx.client.get(`${TASKS}/${other.ids[0]}`, TASK, 'State')).toBe('running');
  expect(await fx.client.get(TASKS, TM, 'Running')).toBe(2);
  expect(await fx.client.get(TASKS, TM, 'Queued')).toBe(64 - 2 - 1);

  // Resume with no slot free: the task waits queued, its job held (Done does not move).
  const resumed = `${TASKS}/${hog.paused[0]}`;
  await runHostileResume(resumed);
  expect(await fx.client.get(resumed, TASK, 'State')).toBe('queued');
  const done = await fx.client.get(resumed, TASK, 'Done');
  await new Promise((r) => setTimeout(r, 300));
  expect(await fx.client.get(resumed, TASK, 'Done')).toBe(done);

  // Root (the owner check lets root steer any task) clears the hog's tasks.
  for (const id of [...hog.ids, other.ids[0]]) {
    await fx.client.call(`${TASKS}/${id}`, TASK, 'Cancel').catch(() => undefined);
  }
  expect(await fx.client.get(TASKS, TM, 'Queued')).toBe(0);
}, 60_000);

/** The hog resumes one of its own paused tasks (Resume is for the owner). */
async function runHostileResume(taskPath: string): Promise<void> {
  const args = ['call', '-a', fx.bus.address, '-d', 'org.vigil.Vigil1', '-o', taskPath];
  await run('gdbus', [...args, '-m', `${TASK}.Resume`], { uid: HOG, gid: HOG });
}
