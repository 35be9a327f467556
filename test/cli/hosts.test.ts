import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, ROOT, TestClient, variant } from '../helpers/client';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';
import { Lan } from '../helpers/netns';
import { CtlProcess, isolatedEnv } from './run';

// `vigilctl watch` shows objects other than tasks generically: Host objects of the
// Wake-on-LAN watcher come and go through the ObjectManager. The daemon runs inside a network
// namespace of the test's own (a one-node LAN), so nothing it watches is a real network.

const WOL = `${ROOT}/WakeOnLan`;
const WOL_IFACE = `${IFACE}WakeOnLan`;

let lan: Lan;
let bus: PrivateBus;
let daemon: DaemonProcess;
let client: TestClient;

beforeAll(async () => {
  lan = new Lan(`vc${process.pid}`);
  const node = lan.addNode({ name: 'srv', mac: '02:00:00:00:07:01', cidr: '10.77.0.1/24' });
  bus = await startPrivateBus();
  daemon = await startDaemon(bus.address, { prefix: ['ip', 'netns', 'exec', node.netns] });
  client = await TestClient.connect(bus.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
  lan?.destroy();
});

test('watch prints Host objects as they are added and removed', async () => {
  const watch = new CtlProcess(['--bus', bus.address, 'watch'], isolatedEnv());
  await watch.until((p) => p.stderr.includes('watching'), 'ready line');
  const json = new CtlProcess(['--bus', bus.address, '--json', 'watch'], isolatedEnv());
  await json.until((p) => p.stderr.includes('watching'), 'ready line (json)');

  const [hostPath] = (await client.call(WOL, WOL_IFACE, 'AddHost', 'sssa{sv}', [
    'sleepy-pc',
    '02:00:00:00:07:09',
    '10.77.0.9',
    { interface: variant('s', 'eth0') },
  ])) as [string];
  // systemd-style escaping of the name in the object path.
  expect(hostPath).toBe(`${ROOT}/Hosts/sleepy_2dpc`);
  await watch.until(
    (p) =>
      new RegExp(`^\\+ ${hostPath} Host .*Name=sleepy-pc .*Mac=02:00:00:00:07:09`, 'm').test(
        p.stdout,
      ),
    'host added line',
  );

  await client.call(WOL, WOL_IFACE, 'RemoveHost', 's', ['sleepy-pc']);
  await watch.until((p) => p.stdoutLines().includes(`- ${hostPath}`), 'host removed line');
  await json.until(
    (p) => p.stdoutLines().some((l) => l.includes('"removed"') && l.includes(hostPath)),
    'removed event',
  );
  const events = json.stdoutLines().map((l) => JSON.parse(l) as Record<string, unknown>);
  const added = events.find((e) => e.event === 'added' && e.path === hostPath);
  expect(
    (added?.interfaces as Record<string, Record<string, unknown>>)[`${IFACE}Host`],
  ).toMatchObject({ Name: 'sleepy-pc', Ip: '10.77.0.9', Interface: 'eth0' });
  // The WakeOnLan object itself is listed generically in the initial snapshot.
  expect(watch.stdout).toMatch(new RegExp(`^\\+ ${WOL} WakeOnLan `, 'm'));
  expect(await watch.kill('SIGINT')).toBe(0);
  expect(await json.kill('SIGINT')).toBe(0);
});
