import { IFACE, ROOT } from '../helpers/client';
import { useDaemon } from '../helpers/fixture';

const fx = useDaemon({ args: ['--slow-pace-ms', '20'] });

const RD = `${ROOT}/RandomData`;
const RD_IFACE = `${IFACE}RandomData`;

describe('RandomData.quick', () => {
  test('returns a decimal below 2^bits for every size in range', async () => {
    for (const bits of [1, 2, 7, 8, 9, 16, 63, 64, 100, 1000, 65536]) {
      const [s] = (await fx.client.call(RD, RD_IFACE, 'quick', 'i', [bits])) as [string];
      expect(s).toMatch(/^(0|[1-9][0-9]*)$/);
      expect(BigInt(s) < 1n << BigInt(bits)).toBe(true);
    }
  });

  test('quick(100) has at most 31 digits and values vary', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const [s] = (await fx.client.call(RD, RD_IFACE, 'quick', 'i', [100])) as [string];
      expect(s.length).toBeLessThanOrEqual(31);
      seen.add(s);
    }
    expect(seen.size).toBe(20);
  });

  test('quick(1) draws both 0 and 1 and nothing else', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const [s] = (await fx.client.call(RD, RD_IFACE, 'quick', 'i', [1])) as [string];
      seen.add(s);
    }
    expect([...seen].sort()).toEqual(['0', '1']);
  });

  test.each([0, -1, 65537, 2147483647, -2147483648])(
    'quick(%d) is InvalidArgument',
    async (bits) => {
      const err = await fx.client.callError(RD, RD_IFACE, 'quick', 'i', [bits]);
      expect(err.type).toBe('org.vigil.Vigil1.Error.InvalidArgument');
    },
  );

  test('a wrong signature is InvalidArgs and the daemon keeps answering', async () => {
    const err = await fx.client.callError(RD, RD_IFACE, 'quick', 's', ['12']);
    expect(err.type).toBe('org.freedesktop.DBus.Error.InvalidArgs');
    const [s] = (await fx.client.call(RD, RD_IFACE, 'quick', 'i', [8])) as [string];
    expect(Number(s)).toBeLessThan(256);
  });
});

describe('RandomData.slow', () => {
  test('returns an id at once, is a slow-random Task with that id, ends with slow_result', async () => {
    const signals = await fx.client.subscribe({ path: RD, iface: RD_IFACE, member: 'slow_result' });
    const [id] = (await fx.client.call(RD, RD_IFACE, 'slow', 'i', [12])) as [string];
    expect(id).toMatch(/^[A-Za-z0-9_]+$/);
    const taskPath = `${ROOT}/Tasks/${id}`;
    expect(await fx.client.get(taskPath, `${IFACE}Task`, 'Kind')).toBe('slow-random');
    expect(await fx.client.get(taskPath, `${IFACE}Task`, 'Id')).toBe(id);
    const msg = await signals.waitFor((m) => m.body[0] === id);
    const value = BigInt(msg.body[1] as string);
    expect(value < 1n << 12n).toBe(true);
    expect(await fx.client.get(taskPath, `${IFACE}Task`, 'State')).toBe('completed');
    expect(signals.count((m) => m.body[0] === id)).toBe(1);
  });

  test.each([0, 4097, -5])('slow(%d) is InvalidArgument', async (bits) => {
    const err = await fx.client.callError(RD, RD_IFACE, 'slow', 'i', [bits]);
    expect(err.type).toBe('org.vigil.Vigil1.Error.InvalidArgument');
  });
});
