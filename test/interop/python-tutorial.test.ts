import path from 'node:path';
import { IFACE, ROOT } from '../helpers/client';
import { INTEROP_SOURCE, run, type RunResult, SYSTEM_PYTHON } from './tools';
import { useDaemon } from '../helpers/fixture';

const fx = useDaemon({ args: ['--slow-pace-ms', '20'] });

/**
 * The classic dbus-python tutorial client (Debian's python3-dbus with the GLib main loop from
 * gi), changed only in bus name, object path and interface, run against the fx.daemon.
 */
const CLIENT = path.join(INTEROP_SOURCE, 'tutorial_client.py');

function tutorialClient(quickBits: number, slowBits: number): Promise<RunResult> {
  return run(SYSTEM_PYTHON, [CLIENT, String(quickBits), String(slowBits)], {
    env: {
      DBUS_SESSION_BUS_ADDRESS: fx.bus.address,
      DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent',
    },
    timeoutMs: 40000,
  });
}

interface TutorialOutput {
  quick: bigint;
  quickDigits: number;
  quickZeroError: string;
  id: string;
  resultId: string;
  result: bigint;
}

function parse(r: RunResult, quickBits: number, slowBits: number): TutorialOutput {
  if (r.code !== 0) throw new Error(`tutorial client exited ${r.code}:\n${r.stderr}${r.stdout}`);
  const line = (re: RegExp): RegExpMatchArray => {
    const m = r.stdout.match(re);
    if (!m) throw new Error(`no line matching ${re} in:\n${r.stdout}`);
    return m;
  };
  const quick = line(new RegExp(`^quick\\(${quickBits}\\) = ([0-9]+)$`, 'm'));
  const zero = line(/^quick\(0\) failed: (\S+)$/m);
  const id = line(new RegExp(`^slow\\(${slowBits}\\) id = (\\S+)$`, 'm'));
  const result = line(/^slow_result\((\S+), ([0-9]+)\)$/m);
  return {
    quick: BigInt(quick[1]),
    quickDigits: quick[1].length,
    quickZeroError: zero[1],
    id: id[1],
    resultId: result[1],
    result: BigInt(result[2]),
  };
}

test('the tutorial client calls quick, then gets slow_result for the id slow returned', async () => {
  const out = parse(await tutorialClient(100, 12), 100, 12);
  expect(out.quick < 1n << 100n).toBe(true);
  expect(out.quickDigits).toBeLessThanOrEqual(31);
  expect(out.quickZeroError).toBe('org.vigil.Vigil1.Error.InvalidArgument');
  expect(out.resultId).toBe(out.id);
  expect(out.result < 1n << 12n).toBe(true);
  // The id the tutorial client saw is the Task's id, and the Task's result is the same number.
  const taskPath = `${ROOT}/Tasks/${out.id}`;
  expect(await fx.client.get(taskPath, `${IFACE}Task`, 'Kind')).toBe('slow-random');
  expect(await fx.client.get(taskPath, `${IFACE}Task`, 'State')).toBe('completed');
  const result = (await fx.client.get(taskPath, `${IFACE}Task`, 'Result')) as Record<
    string,
    { value: unknown }
  >;
  expect(String(result.result.value)).toBe(String(out.result));
});

test('four tutorial clients at once each wait for, and get, their own slow_result', async () => {
  const sizes = [1, 5, 9, 16];
  const outs = await Promise.all(sizes.map((bits) => tutorialClient(16, bits)));
  const parsed = outs.map((r, i) => parse(r, 16, sizes[i]));
  expect(new Set(parsed.map((p) => p.id)).size).toBe(sizes.length);
  parsed.forEach((p, i) => {
    expect(p.resultId).toBe(p.id);
    expect(p.result < 1n << BigInt(sizes[i])).toBe(true);
    expect(p.quick < 1n << 16n).toBe(true);
  });
});
