import { spawn } from 'node:child_process';
import path from 'node:path';
import { BusConnection, claimName } from '../../src/bus/connection';
import { bind, type InterfaceSpec } from '../../src/bus/interface';
import { ObjectServer } from '../../src/bus/server';
import { Variant } from '../../src/bus/values';
import { DBusError } from '../../src/bus/wire/connection';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { MULTIUSER_BUS_CONFIG } from '../helpers/fixture';

/**
 * The object server's own limits, on a real bus with a test table (no vigild): calls refused
 * from their headers (signature, body size), calls in flight per connection, heavy calls per
 * UID, replies too big for the bus, and handlers that fail.
 */
const NAME = 'org.vigil.ServerTest';
const IFACE = 'org.vigil.ServerTest.Calls';
const OBJ = '/org/vigil/ServerTest/Obj';
const NOBODY = 65534;

/** Calls parked in their handlers until the test lets them go. */
const parked: (() => void)[] = [];
const park = (): Promise<void> => new Promise((resolve) => parked.push(resolve));
function releaseAll(): void {
  for (const r of parked.splice(0)) r();
}

const testInterface: InterfaceSpec<unknown> = {
  name: IFACE,
  methods: [
    { name: 'Block', access: 'anyone', in: [], out: [], handler: park },
    { name: 'Heavy', access: 'anyone', heavy: true, in: [], out: [], handler: park },
    {
      name: 'Sum',
      access: 'anyone',
      in: [
        ['a', 'i'],
        ['b', 't'],
      ],
      out: [['sum', 'x']],
      handler: (_t, [a, b]) => BigInt(a as number) + (b as bigint),
    },
    {
      name: 'Sized',
      access: 'anyone',
      in: [['data', 'ay']],
      out: [['length', 'u']],
      maxBodyBytes: 1004,
      handler: (_t, [data]) => (data as Buffer).length,
    },
    {
      name: 'Throws',
      access: 'anyone',
      in: [],
      out: [],
      handler: () => {
        throw new TypeError('a bug in a handler');
      },
    },
    { name: 'BadReply', access: 'anyone', in: [], out: [['n', 'i']], handler: () => 'nan' },
    {
      name: 'Huge',
      access: 'anyone',
      in: [],
      out: [['data', 'ay']],
      handler: () => Buffer.alloc(2 * 1024 * 1024),
    },
  ],
  properties: [{ name: 'Answer', type: 'v', get: () => new Variant('u', 42), change: 'const' }],
  signals: [],
};

let bus: PrivateBus;
let serverConn: BusConnection;
let client: BusConnection;

beforeAll(async () => {
  bus = await startPrivateBus(MULTIUSER_BUS_CONFIG);
  serverConn = await BusConnection.open(bus.address);
  const server = new ObjectServer(serverConn, '/org/vigil/ServerTest', {
    maxInFlightPerConnection: 3,
    maxHeavyPerUid: 2,
    maxMessageBytes: 1024 * 1024,
  });
  server.export(OBJ, [bind(testInterface, {})]);
  await claimName(serverConn, NAME);
  client = await BusConnection.open(bus.address);
});

afterAll(async () => {
  releaseAll();
  client?.close();
  serverConn?.close();
  await bus?.stop();
});

function call(member: string, signature = '', body: unknown[] = [], c = client) {
  return c.call({ destination: NAME, path: OBJ, interface: IFACE, member, signature, body });
}

async function errorOf(p: Promise<unknown>): Promise<{ type: string; text: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DBusError) return { type: e.type, text: e.text };
    throw e;
  }
  throw new Error('the call succeeded');
}

test('a fixed-size signature is served; the wrong one is refused with what it takes', async () => {
  expect((await call('Sum', 'it', [2, 40n])).body).toEqual([42n]);
  expect(await errorOf(call('Sum', 'ii', [1, 2]))).toEqual({
    type: 'org.freedesktop.DBus.Error.InvalidArgs',
    text: `${IFACE}.Sum takes (it), not (ii)`,
  });
});

test("a body over the row's maxBodyBytes is LimitExceeded, one at the limit is served", async () => {
  expect((await call('Sized', 'ay', [Buffer.alloc(1000)])).body).toEqual([1000]);
  const err = await errorOf(call('Sized', 'ay', [Buffer.alloc(1001)]));
  expect(err.type).toBe('org.vigil.Vigil1.Error.LimitExceeded');
  expect(err.text).toMatch(/takes at most 1004 bytes of arguments, not 1005/);
});

test('calls in flight are capped per connection; other connections are not affected', async () => {
  const first = [call('Block'), call('Block'), call('Block')];
  const refused = await errorOf(call('Block'));
  expect(refused.type).toBe('org.vigil.Vigil1.Error.LimitExceeded');
  expect(refused.text).toMatch(/3 calls in flight/);
  const other = await BusConnection.open(bus.address);
  try {
    expect((await call('Sum', 'it', [1, 1n], other)).body).toEqual([2n]);
  } finally {
    other.close();
  }
  await until(() => parked.length === 3, 'three calls parked');
  releaseAll();
  await Promise.all(first);
  // Answered calls free their places.
  const again = [call('Block'), call('Block'), call('Block')];
  await until(() => parked.length === 3, 'three calls parked again');
  releaseAll();
  await Promise.all(again);
});

/** Run calls-as.js as `uid`; resolve with its JSON lines once `ready` lines are out. */
function callsAs(uid: number, member: string, count: number) {
  const child = spawn(
    process.execPath,
    [path.join(__dirname, 'calls-as.js'), bus.address, NAME, OBJ, IFACE, member, String(count)],
    { uid, gid: uid, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: Record<string, unknown>[] = [];
  let buffer = '';
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>);
      buffer = buffer.slice(nl + 1);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { lines, exited };
}

async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('heavy calls are capped per UID across its connections; root is not', async () => {
  const run = callsAs(NOBODY, 'Heavy', 4);
  await until(() => run.lines.filter((l) => 'error' in l).length === 2, 'two refusals');
  expect(run.lines.filter((l) => 'error' in l)).toEqual([
    { error: 'org.vigil.Vigil1.Error.LimitExceeded' },
    { error: 'org.vigil.Vigil1.Error.LimitExceeded' },
  ]);
  await until(() => parked.length === 2, 'two heavy calls running');
  // Root's heavy calls are not counted against anyone.
  const rootCalls = [call('Heavy'), call('Heavy'), call('Heavy')];
  await until(() => parked.length === 5, "root's heavy calls running");
  releaseAll();
  await Promise.all(rootCalls);
  await run.exited;
  expect(run.lines.filter((l) => l.ok === true)).toHaveLength(2);
  // Slots come back once the calls are answered.
  const second = callsAs(NOBODY, 'Heavy', 2);
  await until(() => parked.length === 2, 'heavy calls running again');
  releaseAll();
  await second.exited;
  expect(second.lines.filter((l) => l.ok === true)).toHaveLength(2);
});

test('a reply too big for the bus is LimitExceeded, not a dropped connection', async () => {
  const err = await errorOf(call('Huge'));
  expect(err.type).toBe('org.vigil.Vigil1.Error.LimitExceeded');
  expect(err.text).toMatch(/would exceed the bus message size limit \(1 MiB\)/);
  expect(serverConn.closed).toBe(false);
  expect((await call('Sum', 'it', [1, 2n])).body).toEqual([3n]);
});

test('a handler that throws, or returns what its signature cannot carry, is Failed', async () => {
  expect(await errorOf(call('Throws'))).toEqual({
    type: 'org.vigil.Vigil1.Error.Failed',
    text: 'a bug in a handler',
  });
  expect(await errorOf(call('BadReply'))).toEqual({
    type: 'org.vigil.Vigil1.Error.Failed',
    text: 'internal error',
  });
  expect((await call('Sum', 'it', [1, 2n])).body).toEqual([3n]);
});

test('Properties.Set is refused and the value kept', async () => {
  const props = { destination: NAME, path: OBJ, interface: 'org.freedesktop.DBus.Properties' };
  const err = await errorOf(
    client.call({
      ...props,
      member: 'Set',
      signature: 'ssv',
      body: [IFACE, 'Answer', new Variant('v', new Variant('u', 1))],
    }),
  );
  expect(err.type).toBe('org.freedesktop.DBus.Error.PropertyReadOnly');
  const got = await client.call({
    ...props,
    member: 'Get',
    signature: 'ss',
    body: [IFACE, 'Answer'],
  });
  expect(got.body).toEqual([new Variant('v', new Variant('u', 42))]);
});
