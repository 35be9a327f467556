/**
 * Pending Task.Wait calls die with their callers (issue 13, "Waiters that outlive their
 * callers"): clients that wait on a paused task and then disconnect leave nothing behind, and
 * pending waits are capped per connection and per UID.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IFACE, ROOT } from '../helpers/client';
import { MULTIUSER_BUS_CONFIG, useDaemon } from '../helpers/fixture';
import { GC_ON_SIGNAL_OPTIONS, memoryAfterGc } from '../helpers/gc-on-signal';
import { runHostile } from '../helpers/hostile';

const RD = `${ROOT}/RandomData`;
const TASK = `${IFACE}Task`;
const LIMIT = 'org.vigil.Vigil1.Error.LimitExceeded';
/** Three unprivileged users with passwd entries (nobody, daemon, games). */
const UIDS = [65534, 1, 5];

// The multi-user test bus, but taking more pending replies per connection than vigil's own
// cap (dbus-daemon's default is 128, as vigil's; a session bus allows 50,000).
const busConfig = path.join(fs.mkdtempSync('/tmp/vigil-waits-'), 'bus.conf');
fs.writeFileSync(
  busConfig,
  fs
    .readFileSync(MULTIUSER_BUS_CONFIG, 'utf8')
    .replace(
      '</busconfig>',
      '  <limit name="max_replies_per_connection">1024</limit>\n</busconfig>',
    ),
);
const fx = useDaemon({
  busConfig,
  args: ['--slow-pace-ms', '50'],
  env: { NODE_OPTIONS: GC_ON_SIGNAL_OPTIONS },
});

interface Waits {
  errors: Record<string, number>;
  answered: number;
}

/** 10,000 Wait calls on `path`, 100 per connection, from three UIDs; the clients then leave. */
async function round(path: string): Promise<void> {
  const shares = [3400, 3300, 3300];
  const results = await Promise.all(
    UIDS.map((uid, i) =>
      runHostile<Waits>(uid, ['waits', fx.bus.address, path, shares[i] / 100, 100]),
    ),
  );
  for (const r of results) expect(r).toEqual({ errors: {}, answered: 0 });
}

test('10,000 waits from clients that leave: nothing stays, RSS holds, the caps count from 0 again', async () => {
  const [id] = (await fx.client.call(RD, `${IFACE}RandomData`, 'slow', 'i', [4096])) as [string];
  const path = `${ROOT}/Tasks/${id}`;
  await fx.client.call(path, TASK, 'Pause');
  const pid = fx.daemon.child.pid as number;

  // RSS swings by tens of MB with the collector's timing, so it is read after a full
  // collection; and the daemon takes a moment to drop 10,000 waits of clients that left (their
  // NameOwnerChanged signals arrive after they are gone), so each reading is the least of a
  // few over a second and a half. A waiter that outlived its client would keep some 3 KB,
  // about 28 MB a round, that no collection gives back.
  const settled = async (): Promise<{ rss: number; heap: number }> => {
    const seen: { rss: number; heap: number }[] = [];
    for (let i = 0; i < 6; i++) {
      seen.push(await memoryAfterGc(pid, () => fx.daemon.output()));
      await new Promise((r) => setTimeout(r, 250));
    }
    return {
      rss: Math.min(...seen.map((m) => m.rss)),
      heap: Math.min(...seen.map((m) => m.heap)),
    };
  };
  await round(path); // warms the daemon's heap and caches up
  await round(path);
  const before = await settled();
  for (let i = 0; i < 3; i++) await round(path);
  const after = await settled();
  process.stdout.write(`memory after 2 and 5 rounds: ${JSON.stringify([before, after])}\n`);
  expect(after.rss).toBeLessThan(before.rss * 1.1);
  expect(after.heap).toBeLessThan(before.heap * 1.1);

  // Had any of those 50,000 waits stayed, uid 65534 could not place its full 4,096 now.
  const full = await runHostile<Waits>(65534, ['waits', fx.bus.address, path, 33, 125]);
  expect(full.errors).toEqual({ [LIMIT]: 33 * 125 - 4096 });
  // One connection may have 128 pending waits.
  const one = await runHostile<Waits>(1, ['waits', fx.bus.address, path, 1, 130]);
  expect(one.errors).toEqual({ [LIMIT]: 2 });

  // The task itself is untouched by all this.
  await fx.client.call(path, TASK, 'Cancel');
  expect(await fx.client.get(path, TASK, 'State')).toBe('cancelled');
}, 120_000);
