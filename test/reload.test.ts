import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Message } from '../src/bus/wire/message';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { IFACE, ROOT, TestClient, variant, type SignalLog } from './helpers/client';
import { startDaemon, type DaemonProcess } from './helpers/daemon';
import { Lan } from './helpers/netns';
import { isolatedEnv, runCtl } from './cli/run';

// Daemon.Reload(), `vigilctl reload` and SIGHUP on a private bus: the config file's hosts come,
// go and change on the bus while a task runs and a host added over D-Bus stays; task limits
// apply live and say so; a broken config is refused as a whole and the running one stays.
// vigild runs in a network namespace of the test's own, so the hosts it watches are on a LAN
// of network namespaces and nothing it does reaches a real network.

const WOL = `${ROOT}/WakeOnLan`;
const WOL_IFACE = `${IFACE}WakeOnLan`;
const HOST_IFACE = `${IFACE}Host`;
const TASKS = `${ROOT}/Tasks`;
const RD = `${ROOT}/RandomData`;
const TASK_MANAGER = `${IFACE}TaskManager`;
const hostPath = (name: string): string => `${ROOT}/Hosts/${name}`;

let lan: Lan;
let bus: PrivateBus;
let daemon: DaemonProcess;
let client: TestClient;
let signals: SignalLog;
let dir: string;
let config: string;

/** A config file: `[daemon]` lines, then one `[host:NAME]` per host. */
function writeConfig(daemonLines: string[], hosts: Record<string, string[]>, extra = ''): void {
  const sections = Object.entries(hosts).map(([name, lines]) =>
    [`[host:${name}]`, ...lines, 'interface = eth0'].join('\n'),
  );
  fs.writeFileSync(config, ['[daemon]', ...daemonLines, ...sections, extra, ''].join('\n'));
}

const ALPHA = ['ip = 10.76.0.10', 'mac = 02:00:00:00:76:0a'];
const BETA = ['ip = 10.76.0.11', 'mac = 02:00:00:00:76:0b'];
const DELTA = ['ip = 10.76.0.13', 'mac = 02:00:00:00:76:0d'];

async function hosts(): Promise<string[]> {
  const [paths] = (await client.call(WOL, WOL_IFACE, 'ListHosts')) as string[][];
  return [...paths].sort();
}

const reload = (): ReturnType<typeof runCtl> =>
  runCtl(['--bus', bus.address, 'reload'], isolatedEnv());

/** Everything the daemon logged up to now, once `pattern` has appeared in it. */
async function logged(pattern: RegExp): Promise<string> {
  for (let i = 0; i < 500 && !pattern.test(daemon.output()); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(daemon.output()).toMatch(pattern);
  return daemon.output();
}

const isSignal =
  (member: string, objectPath: string) =>
  (m: Message): boolean =>
    m.member === member && m.path === ROOT && (m.body as unknown[])[0] === objectPath;

beforeAll(async () => {
  lan = new Lan(`vrl${process.pid}`);
  const node = lan.addNode({ name: 'srv', mac: '02:00:00:00:76:01', cidr: '10.76.0.1/24' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-reload-'));
  config = path.join(dir, 'vigil.conf');
  writeConfig(['max_running = 2', 'slow_pace_ms = 1000'], {
    alpha: ALPHA,
    beta: BETA,
    delta: DELTA,
  });
  bus = await startPrivateBus();
  daemon = await startDaemon(bus.address, {
    prefix: ['ip', 'netns', 'exec', node.netns],
    args: ['--config', config],
  });
  client = await TestClient.connect(bus.address);
  signals = await client.subscribe({});
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
  lan?.destroy();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('reload', () => {
  let task = '';

  test('applies hosts and task limits live; D-Bus hosts, tasks and objects stay', async () => {
    await client.call(WOL, WOL_IFACE, 'AddHost', 'sssa{sv}', [
      'added',
      '02:00:00:00:76:a0',
      '10.76.0.50',
      { interface: variant('s', 'eth0') },
    ]);
    const [id] = (await client.call(RD, `${IFACE}RandomData`, 'slow', 'i', [64])) as string[];
    task = `${TASKS}/${id}`;
    expect(await client.get(task, `${IFACE}Task`, 'State')).toBe('running');
    expect(await hosts()).toEqual(['added', 'alpha', 'beta', 'delta'].map(hostPath));
    const alphaBefore = await client.getAll(hostPath('alpha'), HOST_IFACE);

    // alpha changes address and timeout, beta goes, gamma comes, delta gets another MAC.
    writeConfig(
      ['max_running = 1', 'slow_pace_ms = 1000'],
      {
        alpha: ['ip = 10.76.0.20', 'mac = 02:00:00:00:76:0a', 'timeout = 30'],
        gamma: ['ip = 10.76.0.12', 'mac = 02:00:00:00:76:0c'],
        delta: ['ip = 10.76.0.13', 'mac = 02:00:00:00:76:dd'],
      },
      '[randomx]\nmode = fast\n[later]\nsetting = 1\n',
    );
    const result = await reload();
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 0,
      stderr: expect.stringContaining('reloaded') as string,
    });

    expect(await hosts()).toEqual(['added', 'alpha', 'delta', 'gamma'].map(hostPath));
    // alpha is the same object with new settings, announced with PropertiesChanged.
    const changed = await signals.waitFor(
      (m) => m.member === 'PropertiesChanged' && m.path === hostPath('alpha'),
    );
    const [iface, props] = changed.body as [string, Record<string, { value: unknown }>];
    expect(iface).toBe(HOST_IFACE);
    expect(Object.keys(props).sort()).toEqual(['Ip', 'Timeout']);
    expect(props.Ip.value).toBe('10.76.0.20');
    const alphaAfter = await client.getAll(hostPath('alpha'), HOST_IFACE);
    expect(alphaAfter).toEqual({ ...alphaBefore, Ip: '10.76.0.20', Timeout: 30 });
    // beta left and gamma came through the ObjectManager; delta left and came back (new MAC).
    await signals.waitFor(isSignal('InterfacesRemoved', hostPath('beta')));
    await signals.waitFor(isSignal('InterfacesAdded', hostPath('gamma')));
    await signals.waitFor(isSignal('InterfacesRemoved', hostPath('delta')));
    await signals.waitFor(isSignal('InterfacesAdded', hostPath('delta')));
    expect(await client.get(hostPath('delta'), HOST_IFACE, 'Mac')).toBe('02:00:00:00:76:dd');
    expect(await client.get(hostPath('added'), HOST_IFACE, 'Ip')).toBe('10.76.0.50');

    // MaxRunning applied and announced; the running task goes on under the same id.
    expect(await client.get(TASKS, TASK_MANAGER, 'MaxRunning')).toBe(1);
    await signals.waitFor(
      (m) =>
        m.member === 'PropertiesChanged' &&
        m.path === TASKS &&
        'MaxRunning' in (m.body as [string, object])[1],
    );
    expect(await client.get(task, `${IFACE}Task`, 'State')).toBe('running');

    // What cannot apply live is logged as such, and stays as it was.
    const log = await logged(/needs restart.*\[randomx\] mode \(default\) -> fast/);
    // A key no part reloads is not silently taken for applied.
    expect(log).toMatch(/needs restart.*\[later\] setting changed/);
    expect(log).toMatch(/applied .*\[daemon\] max_running 2 -> 1/);
    expect(log).toMatch(/\[host:\*\] \+gamma -beta ~alpha ~delta/);
    expect(await client.get(`${ROOT}/RandomX`, `${IFACE}RandomX`, 'Mode')).toBe('light');
  });

  test('a config that does not parse is refused: vigilctl exits 1, the running config stays', async () => {
    const before = await hosts();
    fs.writeFileSync(config, '[daemon]\nmax_running = 3\n[host:zeta]\nthis line is not ini\n');
    const result = await reload();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `org\\.vigil\\.Vigil1\\.Error\\.InvalidArgument: ${config.replace(/\./g, '\\.')}:4: cannot parse`,
      ),
    );
    await logged(/reload \(asked by uid 0\) refused, the running config stays: .*:4: cannot parse/);
    // A header missing its "]" is an error too, not a key of the section before it.
    fs.writeFileSync(config, '[daemon]\nmax_running = 3\n[host:zeta\nip = 10.76.0.30\n');
    const header = await reload();
    expect(header.code).toBe(1);
    expect(header.stderr).toMatch(
      /InvalidArgument: .*:3: section header without "\]": "\[host:zeta"/,
    );
    expect(await hosts()).toEqual(before);
    expect(await client.get(TASKS, TASK_MANAGER, 'MaxRunning')).toBe(1);
  });

  test('one bad value refuses the whole config, even the parts that were fine', async () => {
    const before = await hosts();
    // Fine: max_running and dropping gamma. Not fine: [randomx] threads.
    writeConfig(['max_running = 3'], { alpha: ALPHA }, '[randomx]\nthreads = none\n');
    const bad = await reload();
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('[randomx] threads must be a positive integer');
    // A host the machine cannot watch is refused the same way.
    writeConfig(['max_running = 3'], { alpha: ALPHA, bad: ['ip = 10.76.0.99', 'mac = nope'] });
    const badHost = await reload();
    expect(badHost.code).toBe(1);
    expect(badHost.stderr).toMatch(/InvalidArgument: .*\[host:bad\]/);
    // So is a [wol] value that waits for a restart anyway: nothing else may apply first.
    writeConfig(['max_running = 3'], { alpha: ALPHA }, '[wol]\nwake_history = 0\n');
    const badWol = await reload();
    expect(badWol.code).toBe(1);
    expect(badWol.stderr).toMatch(/InvalidArgument: \[wol\] wake_history must be/);
    expect(await hosts()).toEqual(before);
    expect(await client.get(TASKS, TASK_MANAGER, 'MaxRunning')).toBe(1);
    expect(await client.get(hostPath('alpha'), HOST_IFACE, 'Ip')).toBe('10.76.0.20');
  });

  test('a config file that has gone is refused with Failed', async () => {
    fs.renameSync(config, `${config}.away`);
    try {
      const result = await reload();
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/org\.vigil\.Vigil1\.Error\.Failed: cannot read config/);
    } finally {
      fs.renameSync(`${config}.away`, config);
    }
  });

  test('SIGHUP reloads too, and the daemon keeps serving', async () => {
    writeConfig(['max_running = 2', 'slow_pace_ms = 1000'], { alpha: ALPHA });
    process.kill(daemon.child.pid as number, 'SIGHUP');
    await signals.waitFor(isSignal('InterfacesRemoved', hostPath('gamma')));
    await logged(/reload \(SIGHUP\): /);
    expect(await hosts()).toEqual(['added', 'alpha'].map(hostPath));
    expect(await client.get(hostPath('alpha'), HOST_IFACE, 'Ip')).toBe('10.76.0.10');
    expect(await client.get(TASKS, TASK_MANAGER, 'MaxRunning')).toBe(2);
    expect(await client.get(task, `${IFACE}Task`, 'State')).toBe('running');
    expect(daemon.child.exitCode).toBeNull();
    await client.call(task, `${IFACE}Task`, 'Cancel');
  });

  test('a D-Bus host whose name the file takes comes back at the reload that drops it', async () => {
    const daemonLines = ['max_running = 2', 'slow_pace_ms = 1000'];
    writeConfig(daemonLines, {
      alpha: ALPHA,
      added: ['ip = 10.76.0.60', 'mac = 02:00:00:00:76:e0'],
    });
    expect((await reload()).code).toBe(0);
    await logged(/host "added" added over D-Bus is now also in the config file; the config wins/);
    expect(await client.get(hostPath('added'), HOST_IFACE, 'Mac')).toBe('02:00:00:00:76:e0');
    writeConfig(daemonLines, { alpha: ALPHA });
    expect((await reload()).code).toBe(0);
    await logged(/watching added again, added over D-Bus/);
    expect(await hosts()).toEqual(['added', 'alpha'].map(hostPath));
    expect(await client.getAll(hostPath('added'), HOST_IFACE)).toMatchObject({
      Mac: '02:00:00:00:76:a0',
      Ip: '10.76.0.50',
    });
    // A D-Bus host again: RemoveHost takes it (a file host's answer would be NotSupported).
    await client.call(WOL, WOL_IFACE, 'RemoveHost', 's', ['added']);
    expect(await hosts()).toEqual([hostPath('alpha')]);
  });
});
