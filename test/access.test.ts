import { bind, type InterfaceSpec } from '../src/bus/interface';
import { SHIPPED_INTERFACES } from '../src/daemon/interface-files';
import { MULTIUSER_BUS_CONFIG } from './helpers/fixture';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { IFACE, ROOT, TestClient } from './helpers/client';
import { startDaemon, type DaemonProcess } from './helpers/daemon';
import { gdbusCallAs } from './helpers/gdbus';
import { Lan } from './helpers/netns';

// Access is a column of the interface tables, enforced by the object server before any handler
// runs. This walks every method row of every shipped table and calls it as uid 65534 with
// arguments of the right signature, on a bus whose policy lets everyone through, so the
// daemon's own answer is what the test sees. vigild runs in a network namespace of its own:
// nothing a row might send can leave it.

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const DENIED = 'org.vigil.Vigil1.Error.AccessDenied';

/** Split a signature into its complete types. */
function completeTypes(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  const one = (): void => {
    const c = sig[i++];
    if (c === 'a') return one();
    if (c === '(' || c === '{') {
      const close = c === '(' ? ')' : '}';
      while (sig[i] !== close) one();
      i++;
    }
  };
  while (i < sig.length) {
    const start = i;
    one();
    out.push(sig.slice(start, i));
  }
  return out;
}

/** The smallest GVariant text of a complete type, as gdbus parses it. */
function minimal(type: string): string {
  if (type.startsWith('a')) return `@${type} ${type.startsWith('a{') ? '{}' : '[]'}`;
  const basic: Record<string, string> = {
    y: 'byte 0',
    b: 'false',
    i: 'int32 0',
    u: 'uint32 0',
    t: 'uint64 0',
    x: 'int64 0',
    d: 'double 0',
    s: "'x'",
    o: "objectpath '/'",
    v: "<''>",
  };
  const text = basic[type];
  if (text === undefined) throw new Error(`no minimal value for type ${type}`);
  return text;
}

test('a table row without an access value (or an owner-only row without an owner) is refused', () => {
  const row = { name: 'Poke', in: [], out: [], handler: () => undefined };
  const spec = (extra: object): InterfaceSpec<unknown> =>
    ({
      name: 'org.example.T',
      methods: [{ ...row, ...extra }],
      properties: [],
      signals: [],
    }) as unknown as InterfaceSpec<unknown>;
  expect(() => bind(spec({}), {})).toThrow(/org\.example\.T\.Poke has no access value/);
  expect(() => bind(spec({ access: 'friends' }), {})).toThrow(/has no access value/);
  expect(() => bind(spec({ access: 'owner' }), {})).toThrow(/names no owner/);
  expect(() => bind(spec({ access: 'anyone' }), {})).not.toThrow();
  const property = { name: 'P', type: 's', get: () => '' };
  const withProperty = {
    name: 'org.example.T',
    methods: [],
    properties: [property],
    signals: [],
  } as unknown as InterfaceSpec<unknown>;
  expect(() => bind(withProperty, {})).toThrow(/org\.example\.T\.P has no change value/);
});

describe('the object server enforces every row of every table', () => {
  let lan: Lan;
  let bus: PrivateBus;
  let daemon: DaemonProcess;
  let client: TestClient;
  const paths = new Map<string, string>();
  let cancelledTask = '';

  beforeAll(async () => {
    lan = new Lan(`vac${process.pid}`);
    lan.addNode({ name: 'daemon', mac: '02:00:00:00:00:01', cidr: '10.79.0.1/24' });
    bus = await startPrivateBus(MULTIUSER_BUS_CONFIG);
    daemon = await startDaemon(bus.address, {
      prefix: ['ip', 'netns', 'exec', lan.node('daemon').netns],
      args: ['--slow-pace-ms', '1000'],
    });
    client = await TestClient.connect(bus.address);
    const [host] = (await client.call(
      `${ROOT}/WakeOnLan`,
      `${IFACE}WakeOnLan`,
      'AddHost',
      'sssa{sv}',
      ['sleeper', '02:00:00:00:00:09', '10.79.0.9', {}],
    )) as string[];
    const slow = async (): Promise<string> => {
      const [id] = (await client.call(
        `${ROOT}/RandomData`,
        `${IFACE}RandomData`,
        'slow',
        'i',
        [64],
      )) as string[];
      return `${ROOT}/Tasks/${id}`;
    };
    const running = await slow();
    cancelledTask = await slow();
    await client.call(cancelledTask, `${IFACE}Task`, 'Cancel');
    for (const [iface, objectPath] of [
      ['Daemon', ROOT],
      ['RandomData', `${ROOT}/RandomData`],
      ['TaskManager', `${ROOT}/Tasks`],
      ['Task', running],
      ['RandomX', `${ROOT}/RandomX`],
      ['WakeOnLan', `${ROOT}/WakeOnLan`],
      ['Host', host],
    ]) {
      paths.set(`${IFACE}${iface}`, objectPath);
    }
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    await bus?.stop();
    lan?.destroy();
  });

  const rows = SHIPPED_INTERFACES.flatMap((spec) =>
    spec.methods.map((m) => ({ iface: spec.name, member: m.name, access: m.access, in: m.in })),
  );

  test('every shipped interface has an object to call', () => {
    for (const spec of SHIPPED_INTERFACES)
      expect([spec.name, paths.has(spec.name)]).toEqual([spec.name, true]);
  });

  test.each(rows.filter((r) => r.access !== 'anyone').map((r) => [`${r.iface}.${r.member}`, r]))(
    '%s refuses another unprivileged user with AccessDenied, logged with the UID',
    async (_name, row) => {
      const logged = daemon.output().split('access denied: uid 65534 ').length;
      const args = completeTypes(row.in.map(([, t]) => t).join('')).map(minimal);
      const reply = gdbusCallAs(
        bus.address,
        NOBODY,
        paths.get(row.iface) ?? '',
        `${row.iface}.${row.member}`,
        ...args,
      );
      expect({ error: reply.error, stderr: reply.stderr }).toEqual({
        error: DENIED,
        stderr: expect.stringContaining(DENIED) as string,
      });
      // The daemon's output is read only while the test awaits.
      for (let i = 0; i < 200; i++) {
        if (daemon.output().split('access denied: uid 65534 ').length > logged) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(daemon.output().split('access denied: uid 65534 ').length).toBe(logged + 1);
    },
  );

  test.each(rows.filter((r) => r.access === 'anyone').map((r) => [`${r.iface}.${r.member}`, r]))(
    '%s is open to anyone: whatever it answers, it is not AccessDenied',
    (_name, row) => {
      const args = completeTypes(row.in.map(([, t]) => t).join('')).map(minimal);
      // Wait would block on the running task; the cancelled one answers at once.
      const objectPath =
        row.iface === `${IFACE}Task` ? cancelledTask : (paths.get(row.iface) ?? '');
      const reply = gdbusCallAs(
        bus.address,
        NOBODY,
        objectPath,
        `${row.iface}.${row.member}`,
        ...args,
      );
      expect(reply.error).not.toBe(DENIED);
      expect(reply.ok || reply.error !== undefined).toBe(true);
    },
  );

  test('the refused calls changed nothing: no host was added or removed, the task still runs', async () => {
    const [hosts] = (await client.call(
      `${ROOT}/WakeOnLan`,
      `${IFACE}WakeOnLan`,
      'ListHosts',
    )) as string[][];
    expect(hosts).toEqual([paths.get(`${IFACE}Host`)]);
    const task = paths.get(`${IFACE}Task`) ?? '';
    expect(await client.get(task, `${IFACE}Task`, 'State')).toBe('running');
  });
});
