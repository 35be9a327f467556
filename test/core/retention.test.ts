/**
 * Retention under a flood (issue 13, "Retention flood"): slow + Cancel in a loop from several
 * clients leaves at most the per-UID and total caps of finished tasks on the bus, the rest in
 * the history, and GetManagedObjects keeps answering.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IFACE, plain, ROOT } from '../helpers/client';
import { MULTIUSER_BUS_CONFIG, useDaemon } from '../helpers/fixture';
import { runHostile } from '../helpers/hostile';
import { isolatedEnv, runCtl } from '../cli/run';

const HOSTILE = 65534;
const PER_USER = 100;
const TOTAL = 150;

const configFile = path.join(fs.mkdtempSync('/tmp/vigil-retention-'), 'vigil.conf');
fs.writeFileSync(
  configFile,
  `[daemon]\nretention_seconds = 600\nretained_per_user = ${PER_USER}\nretained_total = ${TOTAL}\n`,
);
const fx = useDaemon({ busConfig: MULTIUSER_BUS_CONFIG, args: ['--config', configFile] });

interface Churn {
  cycles: number;
  refused: Record<string, number>;
}

test('a slow/Cancel churn leaves the per-UID and total caps of tasks on the bus, all in the history', async () => {
  const om = await fx.client.subscribe({ path: ROOT, iface: 'org.freedesktop.DBus.ObjectManager' });
  const churns = await Promise.all([
    ...[1, 2, 3].map(() => runHostile<Churn>(HOSTILE, ['churn', fx.bus.address, 4000])),
    runHostile<Churn>(0, ['churn', fx.bus.address, 4000]),
  ]);
  for (const c of churns) expect(c.refused).toEqual({});
  const hostileCycles = churns.slice(0, 3).reduce((n, c) => n + c.cycles, 0);
  const cycles = hostileCycles + churns[3].cycles;
  expect(hostileCycles).toBeGreaterThan(PER_USER * 2);
  expect(churns[3].cycles).toBeGreaterThan(TOTAL - PER_USER);

  const [objects] = await fx.client.call(
    ROOT,
    'org.freedesktop.DBus.ObjectManager',
    'GetManagedObjects',
  );
  const tasks = Object.values(
    plain(objects) as Record<string, Record<string, { OwnerUid: number; State: string }>>,
  )
    .map((ifaces) => ifaces[`${IFACE}Task`])
    .filter((t) => t !== undefined);
  const byOwner = (uid: number) => tasks.filter((t) => t.OwnerUid === uid).length;
  expect(byOwner(HOSTILE)).toBeLessThanOrEqual(PER_USER);
  expect(byOwner(0)).toBeLessThanOrEqual(PER_USER);
  expect(tasks.length).toBe(TOTAL);
  for (const t of tasks) expect(t.State).toBe('cancelled');
  // The rest left through InterfacesRemoved, and every one of them is in the history.
  await om.waitFor(() => om.count((m) => m.member === 'InterfacesRemoved') === cycles - TOTAL);
  const [history] = (await fx.client.call(
    `${ROOT}/Tasks`,
    `${IFACE}TaskManager`,
    'GetHistory',
    'u',
    [0],
  )) as [unknown[]];
  expect(history).toHaveLength(cycles);

  // And the clients that list everything keep working.
  const listed = await runCtl(['--bus', fx.bus.address, '--json', 'tasks'], isolatedEnv());
  expect(listed.code).toBe(0);
  expect(JSON.parse(listed.stdout)).toHaveLength(TOTAL);
}, 60_000);
