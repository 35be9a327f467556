import fs from 'node:fs';
import path from 'node:path';
import { forge, FORGED_VALUE, uniqueNameOf } from '../cli/forge';
import { CtlProcess, isolatedEnv, WatchedProcess } from '../cli/run';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import {
  IFACE,
  NAME,
  plain,
  ROOT,
  TestClient,
  type Message,
  type SignalLog,
} from '../helpers/client';
import { startDaemon, tempStateDir, type DaemonProcess } from '../helpers/daemon';
import { MULTIUSER_BUS_CONFIG } from '../helpers/fixture';
import { INTEROP_SOURCE, SYSTEM_PYTHON } from '../interop/tools';
import { SIGNAL } from '../../src/bus/wire/message';

/**
 * Issue 13, finding 1, for every other client: the README's examples (dbus-python and GDBus),
 * `gdbus monitor -d`, `vigilctl watch` and the test helpers' SignalLog listen to vigil while a
 * second connection of root and one of uid 65534 send them signals imitating vigil's, one-to-one
 * and broadcast, with vigil's paths, interfaces and members. Each must show only vigil's real
 * values, ignore everything while vigil is gone, and follow a restarted vigil's new unique name.
 */
const EXAMPLES = path.resolve(__dirname, '../../../examples');
const NOBODY = 65534;
/** A slow(2) lasts 0.5 s: time enough to pause it on a busy machine, short enough to wait for. */
const SLOW_PACE_MS = 250;

/** The examples print `owner NAME`, `finished ID STATE JSON`, `slow_result ID VALUE`, ... */
const EXAMPLE_SCRIPTS = { 'dbus-python': 'watch_tasks.py', gio: 'watch_tasks_gio.py' };
type Example = keyof typeof EXAMPLE_SCRIPTS;

let bus: PrivateBus;
let daemon: DaemonProcess;
let client: TestClient;
let signals: SignalLog;
let forgedArrivals = 0;
/** Every unique name vigil has had in this file. */
const vigilOwners: string[] = [];
const stateDir = tempStateDir();
const examples = {} as Record<Example, WatchedProcess>;
let monitor: WatchedProcess;
let watch: CtlProcess;

const lines = (p: WatchedProcess): string[] => p.stdout.split('\n').filter((l) => l !== '');

/** The `finished ID STATE JSON` lines an example printed for task `id`, parsed. */
function finishedLines(p: WatchedProcess, id: string): [string, unknown][] {
  return lines(p)
    .filter((l) => l.startsWith(`finished ${id} `))
    .map((l) => {
      const [, , state, ...json] = l.split(' ');
      return [state, JSON.parse(json.join(' '))];
    });
}

async function startVigil(): Promise<string> {
  daemon = await startDaemon(bus.address, {
    stateDir,
    args: ['--slow-pace-ms', String(SLOW_PACE_MS)],
  });
  const [owner] = (await client.busCall('GetNameOwner', 's', [NAME])) as [string];
  vigilOwners.push(owner);
  return owner;
}

/** Every watcher has seen `owner` ('' for none) as vigil's owner. */
async function allFollow(owner: string): Promise<void> {
  for (const p of Object.values(examples)) {
    await p.until((x) => lines(x).includes(`owner ${owner || '-'}`), `owner ${owner}`);
  }
  const said = owner
    ? `The name ${NAME} is owned by ${owner}`
    : `The name ${NAME} does not have an owner`;
  await monitor.until((x) => x.stdout.includes(said), said);
  // vigilctl watch names the owner when it changes; at start it says it is watching.
  await watch.until(
    (x) =>
      vigilOwners.length === 1
        ? x.stderr.includes('watching')
        : x.stdout.includes(`"owner":"${owner}"`),
    `vigilctl watch following ${owner || 'no owner'}`,
  );
}

async function targets(): Promise<string[]> {
  const watchers = [...Object.values(examples), monitor, watch];
  const names = await Promise.all(watchers.map((p) => uniqueNameOf(client, p.child.pid ?? -1)));
  return [...names, client.uniqueName];
}

/** Both forgers (root's second connection, uid 65534) at every watcher, with `taskId`'s paths. */
async function forgeAll(taskId: string): Promise<void> {
  const to = await targets();
  const sent = await Promise.all([0, NOBODY].map((uid) => forge(bus.address, uid, to, taskId)));
  for (const s of sent) expect(s).toMatch(/^sent \d+$/);
  // This reply comes after every forgery queued for this client, so they have all arrived.
  await client.busCall('GetId');
}

/**
 * A slow task, held paused while the forgers imitate its signals, then let finish. Returns its
 * id and real result; resolves once every watcher has printed its end.
 */
async function forgedTask(): Promise<{ id: string; value: string }> {
  const [id] = (await client.call(
    `${ROOT}/RandomData`,
    `${IFACE}RandomData`,
    'slow',
    'i',
    [2],
  )) as [string];
  const taskPath = `${ROOT}/Tasks/${id}`;
  await client.call(taskPath, `${IFACE}Task`, 'Pause');
  // Waiting already: the forged Finished for this very path comes first and must not satisfy it.
  const finished = signals.waitFor((m) => m.path === taskPath && m.member === 'Finished');
  await forgeAll(id);
  await client.call(taskPath, `${IFACE}Task`, 'Resume');
  const [result] = (await client.call(taskPath, `${IFACE}Task`, 'Wait')) as [unknown];
  const value = String((plain(result) as { result: string }).result);
  const real = await finished;
  expect(plain(real.body)).toEqual(['completed', { bits: 2, result: value }]);

  for (const p of Object.values(examples)) {
    await p.until((x) => lines(x).includes(`slow_result ${id} ${value}`), `slow_result ${id}`);
  }
  await monitor.until((x) => x.stdout.includes(`slow_result ('${id}', '${value}')`), 'monitor');
  await watch.until(
    (x) => lines(x).some((l) => l.includes('"finished"') && l.includes(id)),
    'watch finished',
  );
  return { id, value };
}

/** Nothing any watcher showed came from the forgers; the helper kept only vigil's signals. */
function expectNoForgery(): void {
  for (const p of [...Object.values(examples), monitor, watch]) {
    expect(p.stdout).not.toContain(FORGED_VALUE);
    expect(p.stdout).not.toMatch(/0\.999|\b999\b|Tasks\/gone|\bgone\b/);
  }
  const fromElsewhere = (m: Message): boolean => !m.sender || !vigilOwners.includes(m.sender);
  expect(signals.messages.length).toBeGreaterThan(0);
  expect(signals.count(fromElsewhere)).toBe(0);
}

beforeAll(async () => {
  bus = await startPrivateBus(MULTIUSER_BUS_CONFIG);
  client = await TestClient.connect(bus.address);
  const owner = await startVigil();
  signals = await client.subscribe({});
  // What reaches this connection from anyone else: proves the forgeries got here.
  client.bus.addSignalListener({
    accepts: (h) =>
      h.type === SIGNAL &&
      h.destination === client.uniqueName &&
      h.sender !== 'org.freedesktop.DBus' &&
      !vigilOwners.includes(h.sender ?? ''),
    handle: () => forgedArrivals++,
  });
  for (const [example, script] of Object.entries(EXAMPLE_SCRIPTS)) {
    examples[example as Example] = new WatchedProcess(
      SYSTEM_PYTHON,
      [path.join(EXAMPLES, script), '--address', bus.address],
      isolatedEnv(),
    );
  }
  monitor = new WatchedProcess('gdbus', ['monitor', '-a', bus.address, '-d', NAME]);
  watch = new CtlProcess(['--bus', bus.address, '--json', 'watch']);
  await allFollow(owner);
});

afterAll(async () => {
  for (const p of [...Object.values(examples), monitor, watch]) await p?.kill('SIGTERM');
  client?.close();
  await daemon?.stop();
  await bus?.stop();
});

test('forged task signals reach the clients and are ignored: only the real values show', async () => {
  const { id, value } = await forgedTask();
  expect(forgedArrivals).toBeGreaterThan(0);
  for (const [example, p] of Object.entries(examples)) {
    expect({ example, finished: finishedLines(p, id) }).toEqual({
      example,
      finished: [['completed', { bits: 2, result: value }]],
    });
    const progress = lines(p).filter((l) => l.startsWith(`progress ${id} `));
    expect(progress.at(-1)).toBe(`progress ${id} 1.000 2 2`);
  }
  expectNoForgery();
});

test('with vigil gone every forgery is ignored; a restarted vigil (new unique name) is followed', async () => {
  const [before] = (await client.busCall('GetNameOwner', 's', [NAME])) as [string];
  await daemon.stop();
  await allFollow('');
  const arrivedBefore = forgedArrivals;
  await forgeAll('gone');
  expect(forgedArrivals).toBeGreaterThan(arrivedBefore);

  const after = await startVigil();
  expect(after).not.toBe(before);
  await allFollow(after);
  const { id, value } = await forgedTask();
  for (const p of Object.values(examples)) {
    expect(finishedLines(p, id)).toEqual([['completed', { bits: 2, result: value }]]);
    expect(lines(p).filter((l) => l.includes(' gone '))).toEqual([]);
  }
  expectNoForgery();
  for (const p of Object.values(examples)) expect(await p.kill('SIGTERM')).toBe(0);
});

test('the README shows the examples as they are', () => {
  const readme = fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');
  const sources = Object.values(EXAMPLE_SCRIPTS).map((f) =>
    fs.readFileSync(path.join(EXAMPLES, f), 'utf8'),
  );
  const blocks = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks.length).toBe(2);
  for (const block of blocks) expect(sources.some((src) => src.includes(block))).toBe(true);
});

/**
 * The interop tests' own clients: the dbus-python tutorial client (a proxy's connect_to_signal)
 * and GLib's GDBusObjectManagerClient with GDBusProxy (gio_watch.py). Each starts a slow task
 * and waits for its signals; the task is held paused while both forgers imitate them.
 */
test('the interop clients (dbus-python tutorial, GDBus object manager) ignore forgeries', async () => {
  const env = isolatedEnv({ DBUS_SESSION_BUS_ADDRESS: bus.address });
  const clients = [
    {
      p: new WatchedProcess(
        SYSTEM_PYTHON,
        [path.join(INTEROP_SOURCE, 'tutorial_client.py'), '8', '4'],
        env,
      ),
      id: /^slow\(4\) id = (\w+)$/m,
    },
    {
      p: new WatchedProcess(SYSTEM_PYTHON, [
        path.join(INTEROP_SOURCE, 'gio_watch.py'),
        bus.address,
        '4',
        '20',
      ]),
      id: /^slow (\w+)$/m,
    },
  ];
  const ids: string[] = [];
  for (const { p, id } of clients) {
    await p.until((x) => id.test(x.stdout), 'the task id');
    const taskId = (id.exec(p.stdout) as RegExpExecArray)[1];
    await client.call(`${ROOT}/Tasks/${taskId}`, `${IFACE}Task`, 'Pause');
    ids.push(taskId);
  }
  for (const [i, { p }] of clients.entries()) {
    const target = await uniqueNameOf(client, p.child.pid ?? -1);
    await Promise.all([0, NOBODY].map((uid) => forge(bus.address, uid, [target], ids[i])));
  }
  const values = await Promise.all(
    ids.map(async (taskId) => {
      const taskPath = `${ROOT}/Tasks/${taskId}`;
      await client.call(taskPath, `${IFACE}Task`, 'Resume');
      const [result] = (await client.call(taskPath, `${IFACE}Task`, 'Wait')) as [unknown];
      return String((plain(result) as { result: string }).result);
    }),
  );
  const [tutorial, gio] = clients.map((c) => c.p);
  expect(await tutorial.exited).toBe(0);
  expect(tutorial.stdout).toContain(`slow_result(${ids[0]}, ${values[0]})`);
  await gio.until((x) => x.stdout.includes(`finished completed ${values[1]}`), 'gio finished');
  await gio.kill('SIGTERM');
  for (const { p } of clients) {
    expect(p.stdout).not.toContain(FORGED_VALUE);
    expect(p.stdout).not.toMatch(/0\.999|\b999\b/);
  }
});
