import fs from 'node:fs';
import path from 'node:path';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, ROOT, TestClient } from '../helpers/client';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';
import {
  BUS_NAME,
  busctl,
  dbusSend,
  gdbusCall,
  normalise,
  type RunResult,
  SERVICES_DIR,
} from './tools';

/**
 * vigil driven by the clients people actually use and no one here wrote: GLib's gdbus,
 * systemd's busctl and libdbus's dbus-send.
 */
const RD = `${ROOT}/RandomData`;
const TASKS = `${ROOT}/Tasks`;
const RD_IFACE = `${IFACE}RandomData`;
const TM_IFACE = `${IFACE}TaskManager`;
const TASK_IFACE = `${IFACE}Task`;
const READ_ONLY = 'org.freedesktop.DBus.Error.PropertyReadOnly';

let bus: PrivateBus;
let daemon: DaemonProcess;
let client: TestClient;

beforeAll(async () => {
  bus = await startPrivateBus();
  // One wakeupd-style host, so that a Host object exists too.
  const config = path.join(bus.dir, 'vigil.conf');
  fs.writeFileSync(
    config,
    '[host:test-box]\nmac = 02:00:00:00:00:01\nip = 192.0.2.10\ninterface = lo\n',
  );
  daemon = await startDaemon(bus.address, {
    args: ['--slow-pace-ms', '25', '--config', config],
  });
  client = await TestClient.connect(bus.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
});

function ok(r: RunResult): string {
  if (r.code !== 0) throw new Error(`client exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The id of a fresh slow task, started by our own client. */
async function slow(bits: number): Promise<string> {
  const [id] = (await client.call(RD, RD_IFACE, 'slow', 'i', [bits])) as [string];
  return id;
}

async function waitDone(id: string): Promise<void> {
  await client.call(`${TASKS}/${id}`, TASK_IFACE, 'Wait').catch(() => undefined);
}

describe('gdbus', () => {
  const gdbus = (p: string, method: string, args: string[] = []): Promise<RunResult> =>
    gdbusCall(bus.address, p, method, args);

  test('quick(16) and quick(100)', async () => {
    const small = ok(await gdbus(RD, `${RD_IFACE}.quick`, ['16'])).match(/^\('([0-9]+)',\)$/m);
    expect(small).not.toBeNull();
    expect(Number(small?.[1])).toBeLessThan(65536);
    const big = ok(await gdbus(RD, `${RD_IFACE}.quick`, ['100'])).match(/^\('([0-9]+)',\)$/m);
    expect(BigInt(big?.[1] ?? '-1') < 1n << 100n).toBe(true);
  });

  test('quick out of range is a named error with a one-line message', async () => {
    const r = await gdbus(RD, `${RD_IFACE}.quick`, ['65537']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/GDBus\.Error:org\.vigil\.Vigil1\.Error\.InvalidArgument: .+/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('slow returns an id; Task.Wait (through gdbus) replies with the result at the end', async () => {
    const id = ok(await gdbus(RD, `${RD_IFACE}.slow`, ['6'])).match(/^\('(\w+)',\)$/m)?.[1];
    expect(id).toBeDefined();
    const waited = ok(await gdbus(`${TASKS}/${id}`, `${TASK_IFACE}.Wait`));
    const value = waited.match(/'result': <'([0-9]+)'>/)?.[1];
    expect(Number(value)).toBeLessThan(64);
    expect(waited).toMatch(/'bits': <uint32 6>/);
  });

  test('ListTasks and GetHistory', async () => {
    const id = await slow(2);
    await waitDone(id);
    const list = ok(await gdbus(TASKS, `${TM_IFACE}.ListTasks`));
    expect(list).toMatch(/^\(\[objectpath '/);
    expect(list).toContain(`'${TASKS}/${id}'`);
    const history = ok(await gdbus(TASKS, `${TM_IFACE}.GetHistory`, ['1']));
    expect(history).toContain(`'Id': <'${id}'>`);
    expect(history).toContain("'State': <'completed'>");
  });

  test('Pause, Resume and Cancel of a task, with Wait answering Cancelled', async () => {
    const id = await slow(4096);
    const p = `${TASKS}/${id}`;
    ok(await gdbus(p, `${TASK_IFACE}.Pause`));
    expect(await client.get(p, TASK_IFACE, 'State')).toBe('paused');
    ok(await gdbus(p, `${TASK_IFACE}.Resume`));
    expect(await client.get(p, TASK_IFACE, 'State')).toBe('running');
    const input = await gdbus(p, `${TASK_IFACE}.Input`, ["{'bits': <3>}"]);
    expect(input.stderr).toContain('org.vigil.Vigil1.Error.NotSupported');
    const waiting = gdbus(p, `${TASK_IFACE}.Wait`);
    ok(await gdbus(p, `${TASK_IFACE}.Cancel`));
    const waited = await waiting;
    expect(waited.code).not.toBe(0);
    expect(waited.stderr).toContain('org.vigil.Vigil1.Error.Cancelled');
    expect(await client.get(p, TASK_IFACE, 'State')).toBe('cancelled');
    const again = await gdbus(p, `${TASK_IFACE}.Cancel`);
    expect(again.stderr).toMatch(/org\.vigil\.Vigil1\.Error\.\w+/);
  });

  test('property reads: Daemon, TaskManager and Task through Properties.Get and GetAll', async () => {
    expect(
      ok(await gdbus(ROOT, 'org.freedesktop.DBus.Properties.Get', [`${IFACE}Daemon`, 'Version'])),
    ).toMatch(/^\(<'[0-9]+\.[0-9]+\.[0-9]+[^']*'>,\)$/m);
    const tm = ok(await gdbus(TASKS, 'org.freedesktop.DBus.Properties.GetAll', [TM_IFACE]));
    expect(tm).toMatch(
      /'Running': <uint32 \d+>, 'Queued': <uint32 \d+>, 'MaxRunning': <uint32 [1-9]\d*>/,
    );
    const id = await slow(1);
    await waitDone(id);
    const all = ok(
      await gdbus(`${TASKS}/${id}`, 'org.freedesktop.DBus.Properties.GetAll', [TASK_IFACE]),
    );
    expect(all).toContain(`'Id': <'${id}'>`);
    expect(all).toContain("'Progress': <1.0>");
    expect(all).toContain("'Unit': <'bits'>");
  });
});

describe('busctl', () => {
  const call = (args: string[]): Promise<RunResult> =>
    busctl(bus.address, ['--json=short', 'call', BUS_NAME, ...args]);
  const json = (r: RunResult): { type: string; data: unknown[] } =>
    JSON.parse(ok(r)) as { type: string; data: unknown[] };

  test('quick and slow', async () => {
    const q = json(await call([RD, RD_IFACE, 'quick', 'i', '16']));
    expect(q.type).toBe('s');
    expect(Number(q.data[0])).toBeLessThan(65536);
    const s = json(await call([RD, RD_IFACE, 'slow', 'i', '2']));
    expect(s.type).toBe('s');
    const id = String(s.data[0]);
    await waitDone(id);
    expect(await client.get(`${TASKS}/${id}`, TASK_IFACE, 'State')).toBe('completed');
  });

  test('ListTasks and GetHistory decode as ao and aa{sv}', async () => {
    const id = await slow(1);
    await waitDone(id);
    const list = json(await call([TASKS, TM_IFACE, 'ListTasks']));
    expect(list.type).toBe('ao');
    expect(list.data[0]).toContain(`${TASKS}/${id}`);
    const hist = json(await call([TASKS, TM_IFACE, 'GetHistory', 'u', '3']));
    expect(hist.type).toBe('aa{sv}');
    const entries = hist.data[0] as Record<string, { type: string; data: unknown }>[];
    expect(entries.length).toBeLessThanOrEqual(3);
    expect(entries[0].Id.data).toBe(id);
    expect(entries[0].State).toEqual({ type: 's', data: 'completed' });
  });

  test('GetHistory above the limit is a named error', async () => {
    const r = await busctl(bus.address, [
      'call',
      BUS_NAME,
      TASKS,
      TM_IFACE,
      'GetHistory',
      'u',
      '4294967295',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/limit/);
  });

  test('get-property of every Daemon and TaskManager property', async () => {
    const d = ok(
      await busctl(bus.address, [
        'get-property',
        BUS_NAME,
        ROOT,
        `${IFACE}Daemon`,
        'Version',
        'StartTime',
      ]),
    ).split('\n');
    expect(d[0]).toMatch(/^s "\d+\.\d+\.\d+/);
    const start = Number(d[1].match(/^t (\d+)$/)?.[1]);
    // StartTime is microseconds since the epoch: within the last hour.
    expect(Math.abs(start / 1000 - Date.now())).toBeLessThan(3600e3);
    const tm = ok(
      await busctl(bus.address, [
        'get-property',
        BUS_NAME,
        TASKS,
        TM_IFACE,
        'Running',
        'Queued',
        'MaxRunning',
      ]),
    );
    expect(tm).toMatch(/^u \d+\nu \d+\nu [1-9]\d*\n$/);
  });

  test('tree and introspect see the task objects', async () => {
    const id = await slow(1);
    expect(ok(await busctl(bus.address, ['tree', BUS_NAME]))).toContain(`${TASKS}/${id}`);
    const intro = ok(await busctl(bus.address, ['introspect', BUS_NAME, `${TASKS}/${id}`]));
    expect(intro).toMatch(/^\.Wait\s+method\s+-\s+a\{sv\}/m);
    expect(intro).toMatch(/^\.Progress\s+signal\s+dttd/m);
    await waitDone(id);
  });
});

describe('dbus-send', () => {
  const send = (args: string[]): Promise<RunResult> => dbusSend(bus.address, args);

  test('quick, slow, ListTasks and GetHistory', async () => {
    const q = ok(await send([RD, `${RD_IFACE}.quick`, 'int32:16'])).match(/string "(\d+)"/);
    expect(Number(q?.[1])).toBeLessThan(65536);
    const id = ok(await send([RD, `${RD_IFACE}.slow`, 'int32:1'])).match(/string "(\w+)"/)?.[1];
    expect(id).toBeDefined();
    await waitDone(String(id));
    expect(ok(await send([TASKS, `${TM_IFACE}.ListTasks`]))).toContain(
      `object path "${TASKS}/${id}"`,
    );
    const hist = ok(await send([TASKS, `${TM_IFACE}.GetHistory`, 'uint32:1']));
    expect(hist).toMatch(new RegExp(`string "Id"\\s+variant\\s+string "${id}"`));
  });

  test('a wrong argument type is InvalidArgs, a missing member UnknownMethod', async () => {
    const wrong = await send([RD, `${RD_IFACE}.quick`, 'string:16']);
    expect(wrong.stderr).toContain('org.freedesktop.DBus.Error.InvalidArgs');
    const missing = await send([RD, `${RD_IFACE}.medium`, 'int32:16']);
    expect(missing.stderr).toContain('org.freedesktop.DBus.Error.UnknownMethod');
  });

  test('Properties.Get and GetAll', async () => {
    const v = ok(
      await send([
        ROOT,
        'org.freedesktop.DBus.Properties.Get',
        `string:${IFACE}Daemon`,
        'string:StartTime',
      ]),
    );
    expect(v).toMatch(/variant\s+uint64 [1-9]\d+/);
    const all = ok(
      await send([TASKS, 'org.freedesktop.DBus.Properties.GetAll', `string:${TM_IFACE}`]),
    );
    for (const name of ['Running', 'Queued', 'MaxRunning']) {
      expect(all).toMatch(new RegExp(`string "${name}"\\s+variant\\s+uint32 \\d+`));
    }
  });
});

/** A value of D-Bus type `sig` as each client writes it (dbus-send takes basic types only). */
const VALUES: Record<string, { gdbus: string; busctl: string[]; dbusSend: string }> = {
  s: { gdbus: "<'changed'>", busctl: ['s', 'changed'], dbusSend: 'variant:string:changed' },
  t: { gdbus: '<uint64 12345>', busctl: ['t', '12345'], dbusSend: 'variant:uint64:12345' },
  u: { gdbus: '<uint32 7>', busctl: ['u', '7'], dbusSend: 'variant:uint32:7' },
  d: { gdbus: '<0.25>', busctl: ['d', '0.25'], dbusSend: 'variant:double:0.25' },
  b: { gdbus: '<false>', busctl: ['b', 'false'], dbusSend: 'variant:boolean:false' },
  ay: { gdbus: '<@ay [1, 2]>', busctl: ['ay', '2', '1', '2'], dbusSend: 'variant:string:x' },
  as: { gdbus: "<@as ['x']>", busctl: ['as', '1', 'x'], dbusSend: 'variant:string:x' },
  'a{sv}': {
    gdbus: "<@a{sv} {'result': <'1'>}>",
    busctl: ['a{sv}', '1', 'result', 's', '1'],
    dbusSend: 'variant:string:{}',
  },
};

describe('Properties.Set is refused on every read-only property, and the value stays', () => {
  async function refuseEverySet(objectPath: string, ifaceName: string): Promise<number> {
    const file = path.join(SERVICES_DIR, `${ifaceName}.xml`);
    const props = (await normalise(fs.readFileSync(file, 'utf8'))).interfaces[ifaceName].properties;
    const before = await client.getAll(objectPath, ifaceName);
    expect(Object.keys(before).sort()).toEqual(Object.keys(props).sort());
    let refused = 0;
    for (const [name, { type }] of Object.entries(props)) {
      const value = VALUES[type];
      if (!value) throw new Error(`no test value for type ${type}`);
      const g = await gdbusCall(bus.address, objectPath, 'org.freedesktop.DBus.Properties.Set', [
        ifaceName,
        name,
        value.gdbus,
      ]);
      expect({ name, code: g.code, error: g.stderr.includes(READ_ONLY) }).toEqual({
        name,
        code: 1,
        error: true,
      });
      const b = await busctl(bus.address, [
        'set-property',
        BUS_NAME,
        objectPath,
        ifaceName,
        name,
        ...value.busctl,
      ]);
      // busctl prints the message, not the error name.
      expect({ name, code: b.code, error: /read-only/.test(b.stderr) }).toEqual({
        name,
        code: 1,
        error: true,
      });
      const d = await dbusSend(bus.address, [
        objectPath,
        'org.freedesktop.DBus.Properties.Set',
        `string:${ifaceName}`,
        `string:${name}`,
        value.dbusSend,
      ]);
      expect({ name, code: d.code, error: d.stderr.includes(READ_ONLY) }).toEqual({
        name,
        code: 1,
        error: true,
      });
      // A value of the wrong type is refused as well.
      const wrongType = await gdbusCall(
        bus.address,
        objectPath,
        'org.freedesktop.DBus.Properties.Set',
        [ifaceName, name, type === 's' ? '<uint32 1>' : "<'x'>"],
      );
      expect({ name, failed: wrongType.code !== 0 }).toEqual({ name, failed: true });
      refused++;
    }
    expect(await client.getAll(objectPath, ifaceName)).toEqual(before);
    return refused;
  }

  test('Daemon: Version, StartTime and Degraded', async () => {
    expect(await refuseEverySet(ROOT, `${IFACE}Daemon`)).toBe(3);
  });

  test('TaskManager: Running, Queued and MaxRunning', async () => {
    expect(await refuseEverySet(TASKS, TM_IFACE)).toBe(3);
  });

  test('Task: all eighteen properties of a finished task', async () => {
    const id = await slow(3);
    await waitDone(id);
    expect(await refuseEverySet(`${TASKS}/${id}`, TASK_IFACE)).toBe(18);
  });

  test.each([
    ['RandomX', `${ROOT}/RandomX`],
    ['WakeOnLan', `${ROOT}/WakeOnLan`],
    ['Host', `${ROOT}/Hosts/test_2dbox`],
  ])('%s: every property', async (name, objectPath) => {
    expect(await refuseEverySet(objectPath, `${IFACE}${name}`)).toBeGreaterThan(0);
  });

  test('RandomData has no properties: Set of any name is UnknownProperty', async () => {
    const r = await gdbusCall(bus.address, RD, 'org.freedesktop.DBus.Properties.Set', [
      RD_IFACE,
      'bits',
      '<8>',
    ]);
    expect(r.stderr).toContain('org.freedesktop.DBus.Error.UnknownProperty');
    expect(await client.getAll(RD, RD_IFACE)).toEqual({});
  });
});
