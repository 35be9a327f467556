import { AddressError } from '../../src/bus/wire/address';
import { BusConnection, ConnectError, DBusError } from '../../src/bus/wire/connection';
import { encodeRaw, FIELD, SIGNAL } from '../../src/bus/wire/message';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { multiuserBusConfigWith } from '../helpers/fixture';

/** The wire layer's connection against a real dbus-daemon: no vigild involved. */

let bus: PrivateBus;
beforeAll(async () => {
  bus = await startPrivateBus();
});
afterAll(async () => {
  await bus?.stop();
});

const DBUS = {
  destination: 'org.freedesktop.DBus',
  path: '/org/freedesktop/DBus',
  interface: 'org.freedesktop.DBus',
};

test('Hello gives a unique name; calls and error replies come back', async () => {
  const c = await BusConnection.open(bus.address);
  try {
    expect(c.uniqueName).toMatch(/^:1\.\d+$/);
    const names = await c.call({ ...DBUS, member: 'ListNames' });
    expect(names.body[0]).toContain(c.uniqueName);
    const err = await c
      .call({ ...DBUS, member: 'GetNameOwner', signature: 's', body: ['no.such.Name'] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DBusError);
    expect((err as DBusError).type).toBe('org.freedesktop.DBus.Error.NameHasNoOwner');
  } finally {
    c.close();
  }
});

test('a bad address is one clear line; a missing socket is a ConnectError', async () => {
  await expect(BusConnection.open('garbage')).rejects.toThrow(AddressError);
  await expect(BusConnection.open('garbage')).rejects.toThrow(/^invalid D-Bus address "garbage"/);
  await expect(BusConnection.open('unix:path=/nonexistent/bus')).rejects.toThrow(ConnectError);
  await expect(BusConnection.open('unix:path=/nonexistent/bus')).rejects.toThrow(/ENOENT/);
});

test('an abstract socket address connects too', async () => {
  const name = `vigil-test-${process.pid}`;
  const abstractBus = await startPrivateBus(undefined, `unix:abstract=${name}`);
  try {
    const c = await BusConnection.open(`unix:abstract=${name}`);
    expect(c.uniqueName).toMatch(/^:/);
    c.close();
  } finally {
    await abstractBus.stop();
  }
});

test('closing fails pending calls with Disconnected; later calls too', async () => {
  const c = await BusConnection.open(bus.address);
  const server = await BusConnection.open(bus.address);
  server.serve({ admit: () => ({ accept: true }), handle: () => undefined }); // never replies
  const pending = c.call({ destination: server.uniqueName, path: '/x', member: 'Hang' });
  c.close();
  await expect(pending).rejects.toMatchObject({ type: 'org.freedesktop.DBus.Error.Disconnected' });
  await expect(c.call({ ...DBUS, member: 'ListNames' })).rejects.toMatchObject({
    type: 'org.freedesktop.DBus.Error.Disconnected',
  });
  server.close();
});

test('a call without an answer times out with NoReply when asked to', async () => {
  const c = await BusConnection.open(bus.address);
  const server = await BusConnection.open(bus.address);
  server.serve({ admit: () => ({ accept: true }), handle: () => undefined });
  try {
    await expect(
      c.call({ destination: server.uniqueName, path: '/x', member: 'Hang' }, { timeoutMs: 200 }),
    ).rejects.toMatchObject({ type: 'org.freedesktop.DBus.Error.NoReply' });
  } finally {
    c.close();
    server.close();
  }
});

describe('a bus that allows few pending replies per connection', () => {
  let tight: PrivateBus;
  beforeAll(async () => {
    // The open multi-user test bus, with the limit lowered from the system bus's 128.
    tight = await startPrivateBus(multiuserBusConfigWith({ max_replies_per_connection: 16 }));
  });
  afterAll(async () => {
    await tight?.stop();
  });

  /** A peer that answers every call after `ms`. */
  async function slowPeer(ms: number): Promise<BusConnection> {
    const peer = await BusConnection.open(tight.address);
    peer.serve({
      admit: () => ({ accept: true }),
      handle: (call) => setTimeout(() => peer.reply(call.header, 's', ['ok']), ms),
    });
    return peer;
  }

  test('100 calls at once all succeed: the connection keeps under the bus limit', async () => {
    const peer = await slowPeer(20);
    const c = await BusConnection.open(tight.address, { maxPendingCalls: 8 });
    const greedy = await BusConnection.open(tight.address, { maxPendingCalls: 1000 });
    try {
      const call = (conn: BusConnection): Promise<unknown> =>
        conn.call({ destination: peer.uniqueName, path: '/x', member: 'Echo' });
      const results = await Promise.allSettled(Array.from({ length: 100 }, () => call(c)));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      // The same burst without the cap hits the bus's limit: the cap is what makes it pass.
      const greedyResults = await Promise.allSettled(
        Array.from({ length: 100 }, () => call(greedy)),
      );
      const refused = greedyResults.filter((r) => r.status === 'rejected');
      expect(refused.length).toBeGreaterThan(0);
      expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({
        type: 'org.freedesktop.DBus.Error.LimitsExceeded',
      });
    } finally {
      c.close();
      greedy.close();
      peer.close();
    }
  });
});

test('a signal whose body does not decode is dropped and counted; the connection goes on', async () => {
  const listener = await BusConnection.open(bus.address);
  const sender = await BusConnection.open(bus.address);
  const seen: unknown[] = [];
  listener.addSignalListener({
    accepts: (h) => h.member === 'Forged',
    handle: (m) => seen.push(m.body),
  });
  try {
    // An `h` (fd index 0) with no UNIX_FDS header: the bus passes it, there is no fd 0.
    for (const [sig, body] of [
      ['h', Buffer.from([0, 0, 0, 0])],
      ['s', Buffer.from([1, 0, 0, 0, 0x41, 0])],
    ] as const) {
      sender.sendRaw(
        encodeRaw({
          type: SIGNAL,
          serial: sender.nextSerial(),
          fields: [
            [FIELD.PATH, 'o', '/org/vigil/Vigil1'],
            [FIELD.INTERFACE, 's', 'org.vigil.Vigil1.Task'],
            [FIELD.MEMBER, 's', 'Forged'],
            [FIELD.DESTINATION, 's', listener.uniqueName],
            [FIELD.SIGNATURE, 'g', sig],
          ],
          body,
        }),
      );
    }
    // A round trip through the bus after both: they have been delivered by then.
    await sender
      .call({ destination: listener.uniqueName, path: '/', member: 'Ping' })
      .catch(() => undefined);
    await listener.call({ ...DBUS, member: 'GetId' });
    expect(listener.stats.signalsDropped).toBe(1);
    expect(seen).toEqual([['A']]);
    expect(listener.closed).toBe(false);
  } finally {
    listener.close();
    sender.close();
  }
});
