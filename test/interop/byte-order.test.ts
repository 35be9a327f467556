import path from 'node:path';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, ROOT, TestClient } from '../helpers/client';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';
import { INTEROP_SOURCE, runOk, SYSTEM_PYTHON } from './tools';

/**
 * The bus forwards messages in the sender's byte order; GLib can send big-endian ones. Every
 * argument must decode the same as in little-endian, and the daemon must answer each call.
 */
interface Reply {
  call: string;
  reply: 'ok' | 'error';
  error?: string;
  body: unknown[];
}

let bus: PrivateBus;
let daemon: DaemonProcess;
let replies: Map<string, Reply>;

beforeAll(async () => {
  bus = await startPrivateBus();
  daemon = await startDaemon(bus.address, { args: ['--slow-pace-ms', '10'] });
  const out = await runOk(
    SYSTEM_PYTHON,
    [path.join(INTEROP_SOURCE, 'byte_order.py'), bus.address],
    {
      timeoutMs: 60000,
    },
  );
  replies = new Map(
    out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Reply)
      .map((r) => [r.call, r]),
  );
}, 90000);

afterAll(async () => {
  await daemon?.stop();
  await bus?.stop();
});

function reply(name: string): Reply {
  const r = replies.get(name);
  if (!r) throw new Error(`no reply to ${name}`);
  return r;
}

test('quick(16) in a big-endian call is below 2^16; quick(65537) is refused as 65537', () => {
  expect(reply('quick16')).toMatchObject({ reply: 'ok' });
  expect(Number(reply('quick16').body[0])).toBeLessThan(65536);
  expect(reply('quick65537')).toMatchObject({
    reply: 'error',
    error: 'org.vigil.Vigil1.Error.InvalidArgument',
  });
  expect(String(reply('quick65537').body[0])).toContain('65537');
});

test('slow, GetHistory, Properties.GetAll and GetManagedObjects answer big-endian callers', async () => {
  expect(reply('slow').reply).toBe('ok');
  const id = String(reply('slow').body[0]);
  expect(reply('history').reply).toBe('ok');
  expect(reply('daemon')).toMatchObject({ reply: 'ok', body: [{ Version: expect.any(String) }] });
  const objects = reply('objects').body[0] as Record<string, unknown>;
  expect(Object.keys(objects)).toContain(`${ROOT}/Tasks/${id}`);
  // The task the big-endian caller started ran like any other.
  const client = await TestClient.connect(bus.address);
  try {
    await client.call(`${ROOT}/Tasks/${id}`, `${IFACE}Task`, 'Wait');
    expect(await client.get(`${ROOT}/Tasks/${id}`, `${IFACE}Task`, 'Kind')).toBe('slow-random');
  } finally {
    client.close();
  }
});

test('Properties.Set in big-endian is refused like any other', () => {
  expect(reply('set')).toMatchObject({
    reply: 'error',
    error: 'org.freedesktop.DBus.Error.PropertyReadOnly',
  });
});

test('RandomX.Hash with big-endian byte arrays gives the official vector', () => {
  const hash = reply('hash');
  expect(hash.reply).toBe('ok');
  expect(Buffer.from(hash.body[0] as number[]).toString('hex')).toBe(
    '639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f',
  );
});
