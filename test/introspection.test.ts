import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { syncInterfaceFiles } from '../src/bus/introspection-files';
import { SHIPPED_INTERFACES } from '../src/daemon/interface-files';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { IFACE, ROOT, TestClient } from './helpers/client';
import { startDaemon, type DaemonProcess } from './helpers/daemon';
import {
  gdbusCall,
  gdbusIntrospect,
  normalise,
  type NormalInterface,
  type NormalNode,
  SERVICES_DIR,
} from './interop/tools';

/**
 * The D-Bus contract of DESIGN.md written out independently of the daemon's tables:
 * methods as [in, out] signatures, signals and properties by signature. The shipped XML must
 * say exactly this (core) or at least this (capabilities, which may add members).
 */
interface Contract {
  methods: Record<string, [string, string]>;
  signals: Record<string, string>;
  properties: Record<string, string>;
}

const CORE_CONTRACT: Record<string, Contract> = {
  Daemon: {
    methods: { Reload: ['', ''] },
    signals: {},
    properties: { Version: 's', StartTime: 't', Degraded: 's' },
  },
  RandomData: {
    methods: { quick: ['i', 's'], slow: ['i', 's'] },
    signals: { slow_result: 'ss' },
    properties: {},
  },
  TaskManager: {
    methods: { ListTasks: ['', 'ao'], GetHistory: ['u', 'aa{sv}'], GetTask: ['s', 'a{sv}'] },
    signals: {},
    properties: { Running: 'u', Queued: 'u', MaxRunning: 'u' },
  },
  Task: {
    methods: {
      Cancel: ['', ''],
      Pause: ['', ''],
      Resume: ['', ''],
      Wait: ['', 'a{sv}'],
      Input: ['a{sv}', ''],
    },
    signals: { Progress: 'dttd', Finished: 'sa{sv}' },
    properties: {
      Id: 's',
      Kind: 's',
      State: 's',
      Progress: 'd',
      ProgressValid: 'b',
      Phase: 's',
      Done: 't',
      Total: 't',
      Unit: 's',
      Rate: 'd',
      StartTime: 't',
      ExpectedEndTime: 't',
      FinishTime: 't',
      OwnerUid: 'u',
      Cancelable: 'b',
      Result: 'a{sv}',
      ErrorName: 's',
      ErrorMessage: 's',
    },
  },
};

const CAPABILITY_CONTRACT: Record<string, Contract> = {
  RandomX: {
    methods: {
      Hash: ['ayay', 'ay'],
      HashBatch: ['ayaaya{sv}', 'o'],
      Search: ['ayayuta{sv}', 'o'],
      Benchmark: ['ua{sv}', 'o'],
    },
    signals: {},
    properties: {
      Mode: 's',
      Threads: 'u',
      DatasetState: 's',
      DatasetKey: 'ay',
      Features: 'as',
      HashRate: 'd',
      HugePageCoverage: 'd',
    },
  },
  WakeOnLan: {
    methods: {
      AddHost: ['sssa{sv}', 'o'],
      RemoveHost: ['s', ''],
      Wake: ['s', ''],
      ListHosts: ['', 'ao'],
      GetWakeHistory: ['u', 'aa{sv}'],
    },
    signals: { WakeSent: 'ssss' },
    properties: { Interfaces: 'as', FramesSeen: 't', WakesSent: 't' },
  },
  Host: {
    methods: { Wake: ['', ''] },
    signals: {},
    properties: {
      Name: 's',
      Mac: 's',
      Ip: 's',
      Interface: 's',
      State: 's',
      LastSeen: 't',
      LastWake: 't',
      WakeCount: 'u',
      OnlyFrom: 'as',
      Timeout: 'u',
      Cooldown: 'u',
      LastWakeReason: 's',
      IgnoreFrom: 'as',
      Ip6: 'as',
      Proxy: 'b',
      WakePorts: 'as',
      Proxying: 'b',
    },
  },
};

/** Names the contract gives to arguments (DESIGN.md spells out these). */
const CONTRACT_ARG_NAMES: Record<string, Record<string, string[]>> = {
  RandomData: { quick: ['bits'], slow: ['bits', 'id'], slow_result: ['id', 'result'] },
  TaskManager: { GetHistory: ['limit'], GetTask: ['id'] },
  Task: { Progress: ['progress', 'done', 'total', 'rate'], Finished: ['state', 'result'] },
};

/** The contract's shape of a parsed interface, for comparison. */
function shape(iface: NormalInterface): Contract {
  const sig = (args: string[][], dir?: string): string =>
    args
      .filter((a) => dir === undefined || a[2] === dir)
      .map((a) => a[1])
      .join('');
  return {
    methods: Object.fromEntries(
      Object.entries(iface.methods).map(([n, m]) => [n, [sig(m.args, 'in'), sig(m.args, 'out')]]),
    ),
    signals: Object.fromEntries(Object.entries(iface.signals).map(([n, s]) => [n, sig(s.args)])),
    properties: Object.fromEntries(Object.entries(iface.properties).map(([n, p]) => [n, p.type])),
  };
}

const shippedFiles = fs
  .readdirSync(SERVICES_DIR)
  .filter((f) => /^org\.vigil\.Vigil1\.[A-Za-z0-9]+\.xml$/.test(f))
  .sort();

async function shipped(ifaceName: string): Promise<NormalInterface> {
  const file = path.join(SERVICES_DIR, `${ifaceName}.xml`);
  if (!fs.existsSync(file)) throw new Error(`no shipped introspection file for ${ifaceName}`);
  const node = await normalise(fs.readFileSync(file, 'utf8'));
  const iface = node.interfaces[ifaceName];
  if (!iface) throw new Error(`${file} does not describe ${ifaceName}`);
  return iface;
}

describe('shipped interface files (services/*.xml)', () => {
  test('the four core interfaces are shipped', () => {
    for (const name of Object.keys(CORE_CONTRACT)) {
      expect(shippedFiles).toContain(`${IFACE}${name}.xml`);
    }
  });

  test('each file is one <node> with exactly the interface it is named after, all read-only', async () => {
    for (const file of shippedFiles) {
      const node = await normalise(fs.readFileSync(path.join(SERVICES_DIR, file), 'utf8'));
      expect(Object.keys(node.interfaces)).toEqual([file.slice(0, -'.xml'.length)]);
      expect(node.children).toEqual([]);
      for (const iface of Object.values(node.interfaces)) {
        for (const p of Object.values(iface.properties)) expect(p.access).toBe('read');
      }
    }
  });

  test('the files are what scripts/gen-introspection writes from the current tables', () => {
    expect(syncInterfaceFiles(SERVICES_DIR, true, SHIPPED_INTERFACES)).toEqual([]);
  });

  test('generating them loads no native module: the tables alone, no capability set up', () => {
    const generator = path.resolve(__dirname, '../src/daemon/interface-files.js');
    const script =
      `require(${JSON.stringify(generator)});` +
      'console.log(JSON.stringify(Object.keys(require.cache)));';
    const loaded = JSON.parse(
      execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }),
    ) as string[];
    expect(loaded.some((f) => f.endsWith('interface-files.js'))).toBe(true);
    const native = loaded.filter((f) =>
      /node_modules\/(koffi|cap|raw-socket|piscina|better-sqlite3)\//.test(f),
    );
    expect(native).toEqual([]);
    expect(loaded.filter((f) => f.endsWith('.node'))).toEqual([]);
  });

  test('properties that never change are const, so PropertiesChanged never names them', async () => {
    const constant: Record<string, string[]> = {
      Daemon: ['Version', 'StartTime'],
      Task: ['Id', 'Kind', 'Unit', 'OwnerUid', 'Cancelable'],
      RandomX: ['Mode', 'Threads'],
      Host: ['Name', 'Mac'],
    };
    for (const [name, props] of Object.entries(constant)) {
      const iface = await shipped(`${IFACE}${name}`);
      for (const prop of props) {
        expect({ prop, annotations: iface.properties[prop].annotations }).toEqual({
          prop,
          annotations: { 'org.freedesktop.DBus.Property.EmitsChangedSignal': 'const' },
        });
      }
    }
    for (const spec of SHIPPED_INTERFACES) {
      for (const p of spec.properties) {
        const iface = await shipped(spec.name);
        const annotation =
          iface.properties[p.name].annotations['org.freedesktop.DBus.Property.EmitsChangedSignal'];
        expect({ prop: `${spec.name}.${p.name}`, annotation }).toEqual({
          prop: `${spec.name}.${p.name}`,
          annotation: { emits: undefined, const: 'const', silent: 'false' }[p.change],
        });
      }
    }
  });

  test.each(Object.keys(CORE_CONTRACT))(
    'org.vigil.Vigil1.%s says exactly what DESIGN.md says',
    async (name) => {
      const iface = await shipped(`${IFACE}${name}`);
      expect(shape(iface)).toEqual(CORE_CONTRACT[name]);
      for (const [member, names] of Object.entries(CONTRACT_ARG_NAMES[name] ?? {})) {
        const m = iface.methods[member] ?? iface.signals[member];
        expect(m.args.map((a) => a[0]).slice(0, names.length)).toEqual(names);
      }
    },
  );

  test('capability interfaces that are shipped carry every member DESIGN.md gives them', async () => {
    for (const [name, contract] of Object.entries(CAPABILITY_CONTRACT)) {
      if (!shippedFiles.includes(`${IFACE}${name}.xml`)) continue;
      const actual = shape(await shipped(`${IFACE}${name}`));
      expect(actual.methods).toMatchObject(contract.methods);
      expect(actual.signals).toMatchObject(contract.signals);
      expect(actual.properties).toMatchObject(contract.properties);
    }
  });
});

describe('runtime introspection through gdbus matches the shipped files', () => {
  let bus: PrivateBus;
  let daemon: DaemonProcess;
  let client: TestClient;
  let taskPath: string;
  /** Every object found by walking the tree from the root with gdbus. */
  const objects = new Map<string, NormalNode>();

  beforeAll(async () => {
    bus = await startPrivateBus();
    // A pace of a minute keeps the slow task alive (and its object exported) for the whole file;
    // a wakeupd-style host section gives a Host object, with a name that needs escaping.
    const config = path.join(bus.dir, 'vigil.conf');
    fs.writeFileSync(
      config,
      '[host:test-box]\nmac = 02:00:00:00:00:01\nip = 192.0.2.10\ninterface = lo\n',
    );
    daemon = await startDaemon(bus.address, {
      args: ['--slow-pace-ms', '60000', '--config', config],
    });
    client = await TestClient.connect(bus.address);
    const [id] = (await client.call(
      `${ROOT}/RandomData`,
      `${IFACE}RandomData`,
      'slow',
      'i',
      [8],
    )) as [string];
    taskPath = `${ROOT}/Tasks/${id}`;
    const walk = async (p: string): Promise<void> => {
      const node = await normalise(await gdbusIntrospect(bus.address, p));
      objects.set(p, node);
      for (const child of node.children) await walk(`${p}/${child}`);
    };
    await walk(ROOT);
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    await bus?.stop();
  });

  async function expectMatchesShipped(objectPath: string): Promise<string[]> {
    const node = objects.get(objectPath);
    if (!node) throw new Error(`gdbus did not find ${objectPath} by walking from ${ROOT}`);
    const ours = Object.keys(node.interfaces).filter((n) => n.startsWith(IFACE));
    for (const name of ours) {
      expect({ [name]: node.interfaces[name] }).toEqual({ [name]: await shipped(name) });
    }
    return ours;
  }

  test('the walk from the root finds RandomData, Tasks and the running task', () => {
    expect([...objects.keys()]).toEqual(
      expect.arrayContaining([ROOT, `${ROOT}/RandomData`, `${ROOT}/Tasks`, taskPath]),
    );
    expect(objects.get(`${ROOT}/Tasks`)?.children).toContain(taskPath.split('/').pop());
  });

  test.each([
    ['/org/vigil/Vigil1', ['Daemon']],
    ['/org/vigil/Vigil1/RandomData', ['RandomData']],
    ['/org/vigil/Vigil1/Tasks', ['TaskManager']],
  ])('%s serves %j as shipped', async (objectPath, names) => {
    expect(await expectMatchesShipped(objectPath)).toEqual(names.map((n) => IFACE + n));
  });

  test.each([
    ['/org/vigil/Vigil1/RandomX', ['RandomX']],
    ['/org/vigil/Vigil1/WakeOnLan', ['WakeOnLan']],
    ['/org/vigil/Vigil1/Hosts/test_2dbox', ['Host']],
  ])('capability object %s serves %j as shipped', async (objectPath, names) => {
    expect(await expectMatchesShipped(objectPath)).toEqual(names.map((n) => IFACE + n));
  });

  test('a Task made by slow serves org.vigil.Vigil1.Task as shipped', async () => {
    expect(await expectMatchesShipped(taskPath)).toEqual([`${IFACE}Task`]);
  });

  test('every object found (capabilities included) serves only shipped interfaces, as shipped', async () => {
    for (const p of objects.keys()) await expectMatchesShipped(p);
  });

  test('the ObjectManager is at /org/vigil/Vigil1 with the standard signatures', () => {
    const om = objects.get(ROOT)?.interfaces['org.freedesktop.DBus.ObjectManager'];
    expect(om).toBeDefined();
    expect(shape(om as NormalInterface)).toEqual({
      methods: { GetManagedObjects: ['', 'a{oa{sa{sv}}}'] },
      signals: { InterfacesAdded: 'oa{sa{sv}}', InterfacesRemoved: 'oas' },
      properties: {},
    });
    for (const [p, node] of objects) {
      if (p !== ROOT) expect(node.interfaces['org.freedesktop.DBus.ObjectManager']).toBeUndefined();
    }
  });

  test('every object carries Introspectable, Properties and Peer with standard signatures', () => {
    for (const node of objects.values()) {
      // A node without interfaces is only a parent in the tree (e.g. /org/vigil/Vigil1/Hosts).
      if (Object.keys(node.interfaces).length === 0) {
        expect(node.children.length).toBeGreaterThan(0);
        continue;
      }
      const std = (n: string): Contract => shape(node.interfaces[`org.freedesktop.DBus.${n}`]);
      expect(std('Introspectable').methods).toEqual({ Introspect: ['', 's'] });
      expect(std('Peer').methods).toEqual({ Ping: ['', ''], GetMachineId: ['', 's'] });
      expect(std('Properties')).toEqual({
        methods: { Get: ['ss', 'v'], GetAll: ['s', 'a{sv}'], Set: ['ssv', ''] },
        signals: { PropertiesChanged: 'sa{sv}as' },
        properties: {},
      });
    }
  });

  test('GetManagedObjects (called by gdbus) lists the task with its Task properties', async () => {
    const r = await gdbusCall(
      bus.address,
      ROOT,
      'org.freedesktop.DBus.ObjectManager.GetManagedObjects',
    );
    expect(r.code).toBe(0);
    // gdbus writes the first key of a{o...} as "objectpath '...'", the others bare.
    expect(r.stdout).toMatch(new RegExp(`'${taskPath}': \\{'${IFACE}Task': \\{'Id': <'`));
    expect(r.stdout).toContain("'Kind': <'slow-random'>");
  });

  test('introspecting an object that does not exist is an error, not an empty node', async () => {
    await expect(gdbusIntrospect(bus.address, `${ROOT}/NoSuchThing`)).rejects.toThrow(
      /org\.vigil\.Vigil1\.Error\.NotFound|org\.freedesktop\.DBus\.Error\.UnknownObject/,
    );
  });
});
