import { execFileSync } from 'node:child_process';
import { startPrivateBus } from '../helpers/bus';
import { IFACE, ROOT, variant } from '../helpers/client';
import { VIGILCTL } from '../helpers/daemon';
import { CtlProcess, isolatedEnv, runCtl, type CtlResult } from './run';
import { useDaemon } from '../helpers/fixture';

const fx = useDaemon({ args: ['--slow-pace-ms', '20'] });

const RD = `${ROOT}/RandomData`;
const RD_IFACE = `${IFACE}RandomData`;
const TASK_IFACE = `${IFACE}Task`;
const taskPath = (id: string): string => `${ROOT}/Tasks/${id}`;

/** vigilctl on the test's private fx.bus. */
const ctl = (...args: string[]): Promise<CtlResult> => runCtl(['--bus', fx.bus.address, ...args]);

/** A vigil error as vigilctl prints it: exactly one line on stderr. */
function expectErrorLine(r: CtlResult, name: string, code = 1): void {
  expect(r.code).toBe(code);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  const errorLines = lines.filter((l) => l.startsWith('vigilctl: '));
  expect(errorLines).toHaveLength(1);
  expect(errorLines[0]).toMatch(new RegExp(`^vigilctl: ${name.replace(/\./g, '\\.')}: \\S`));
}

async function slowNoWait(bits: number): Promise<string> {
  const r = await ctl('random', 'slow', String(bits), '--no-wait');
  expect(r.code).toBe(0);
  const id = r.stdout.trim();
  expect(id).toMatch(/^[A-Za-z0-9_]+$/);
  return id;
}

async function stateOf(id: string): Promise<string> {
  return (await fx.client.get(taskPath(id), TASK_IFACE, 'State')) as string;
}

/** Poll the task's State until it is `state` (tasks start as soon as a slot is free). */
async function untilState(id: string, state: string): Promise<void> {
  for (let i = 0; i < 500 && (await stateOf(id)) !== state; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(await stateOf(id)).toBe(state);
}

describe('vigilctl random', () => {
  test('random quick 100 prints one decimal below 2^100', async () => {
    const r = await ctl('random', 'quick', '100');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^(0|[1-9][0-9]*)\n$/);
    expect(BigInt(r.stdout.trim()) < 1n << 100n).toBe(true);
  });

  test('--json random quick 64 prints the bits and the number as a string', async () => {
    const r = await ctl('--json', 'random', 'quick', '64');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { bits: number; result: string };
    expect(doc.bits).toBe(64);
    expect(typeof doc.result).toBe('string');
    expect(BigInt(doc.result) < 1n << 64n).toBe(true);
  });

  test.each([['0'], ['65537'], ['-1']])(
    'random quick %s is the daemon’s InvalidArgument, one line, exit 1',
    async (bits) => {
      const r = await ctl('random', 'quick', bits);
      expectErrorLine(r, 'org.vigil.Vigil1.Error.InvalidArgument');
      expect(r.stdout).toBe('');
    },
  );

  test('--json errors also print an error document on stdout', async () => {
    const r = await ctl('random', 'quick', '0', '--json');
    expectErrorLine(r, 'org.vigil.Vigil1.Error.InvalidArgument');
    const doc = JSON.parse(r.stdout) as { error: { name: string; message: string } };
    expect(doc.error.name).toBe('org.vigil.Vigil1.Error.InvalidArgument');
    expect(doc.error.message).toMatch(/bits/);
  });

  test.each([['abc'], ['1.5'], ['99999999999'], ['']])(
    'random quick %p is a usage error (exit 2) that never reaches the bus',
    async (bits) => {
      const r = await ctl('random', 'quick', bits);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^vigilctl: BITS must be/);
      expect(r.stderr).toMatch(/usage: vigilctl random quick BITS/);
    },
  );

  test('random slow prints the id, plain progress on stderr, then the slow_result value', async () => {
    const signals = await fx.client.subscribe({ path: RD, iface: RD_IFACE, member: 'slow_result' });
    const r = await ctl('random', 'slow', '16');
    expect(r.code).toBe(0);
    const [id, result, ...extra] = r.stdout.split('\n').filter((l) => l !== '');
    expect(extra).toEqual([]);
    expect(id).toMatch(/^[A-Za-z0-9_]+$/);
    const signal = await signals.waitFor((m) => m.body[0] === id);
    expect(result).toBe(signal.body[1]);
    expect(BigInt(result) < 1n << 16n).toBe(true);
    // Not a terminal: plain lines, no cursor movement, and the last one says it completed.
    expect(r.stderr).not.toMatch(/\x1b\[/);
    const progress = r.stderr.split('\n').filter((l) => l.startsWith(id));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress[progress.length - 1]).toMatch(/completed\s+100%\s+16\/16 bits/);
    expect(await stateOf(id)).toBe('completed');
  });

  test('--json random slow prints one document with id, state and result', async () => {
    const r = await ctl('--json', 'random', 'slow', '10');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({ bits: 10, state: 'completed', path: taskPath(String(doc.id)) });
    expect(BigInt(doc.result as string) < 1n << 10n).toBe(true);
    // --json on a pipe keeps stderr quiet: nothing to parse around.
    expect(r.stderr).toBe('');
  });

  test('random slow 4097 is InvalidArgument and creates no task', async () => {
    const before = (await fx.client.call(`${ROOT}/Tasks`, `${IFACE}TaskManager`, 'ListTasks')) as [
      string[],
    ];
    const r = await ctl('random', 'slow', '4097');
    expectErrorLine(r, 'org.vigil.Vigil1.Error.InvalidArgument');
    const after = (await fx.client.call(`${ROOT}/Tasks`, `${IFACE}TaskManager`, 'ListTasks')) as [
      string[],
    ];
    expect(after[0].length).toBe(before[0].length);
  });

  test('random slow --no-wait prints only the id of a task that is really running', async () => {
    const id = await slowNoWait(40);
    expect(['queued', 'running']).toContain(await stateOf(id));
    const w = await ctl('wait', id);
    expect(w.code).toBe(0);
  });

  test('progress bars on a terminal (through script(1)): cursor control, bar, 100%', async () => {
    const cmd = `${process.execPath} ${VIGILCTL} --bus '${fx.bus.address}' random slow 12`;
    const out = execFileSync('script', ['-qec', cmd, '/dev/null'], {
      env: isolatedEnv({ COLUMNS: '100' }),
      encoding: 'utf8',
    });
    expect(out).toMatch(/\x1b\[1A\x1b\[J/);
    expect(out).toMatch(/\[#+\] 100%/);
    expect(out).toMatch(/completed/);
  });
});

describe('vigilctl tasks, task, wait, history', () => {
  let doneId: string;

  beforeAll(async () => {
    doneId = await slowNoWait(6);
    expect((await ctl('wait', doneId)).code).toBe(0);
  });

  test('tasks lists live tasks in a table; --json gives every property', async () => {
    const running = await slowNoWait(300);
    const human = await ctl('tasks');
    expect(human.code).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID\s+KIND\s+STATE\s+PROGRESS/);
    expect(lines.find((l) => l.startsWith(running))).toMatch(/slow-random\s+(queued|running)/);
    expect(lines.find((l) => l.startsWith(doneId))).toMatch(/completed\s+100%\s+6\/6 bits/);

    const json = await ctl('tasks', '--json');
    const tasks = JSON.parse(json.stdout) as Record<string, unknown>[];
    const t = tasks.find((x) => x.Id === running);
    expect(t).toMatchObject({ Kind: 'slow-random', Path: taskPath(running), Unit: 'bits' });
    expect(typeof t?.StartTime).toBe('number');
    expect(typeof t?.Progress).toBe('number');
    expect((await ctl('cancel', running)).code).toBe(0);
  });

  test('task ID prints every property; --json has numbers and the result dict', async () => {
    const human = await ctl('task', doneId);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^${taskPath(doneId)}\n`));
    for (const prop of ['Id', 'Kind', 'State', 'Progress', 'Rate', 'StartTime', 'Result']) {
      expect(human.stdout).toMatch(new RegExp(`^  ${prop}:`, 'm'));
    }
    expect(human.stdout).toMatch(/^ {4}bits: 6$/m);

    const json = await ctl('--json', 'task', taskPath(doneId));
    const doc = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({ Id: doneId, State: 'completed', Done: 6, Total: 6, OnBus: true });
    expect((doc.Result as Record<string, unknown>).bits).toBe(6);
    expect(Number(doc.FinishTime)).toBeGreaterThanOrEqual(Number(doc.StartTime));
  });

  test('wait on a finished task prints its result at once', async () => {
    const r = await ctl('wait', doneId);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^result: \d+\nbits: 6\n$/);
    const json = await ctl('--json', 'wait', doneId);
    expect(JSON.parse(json.stdout)).toMatchObject({
      id: doneId,
      state: 'completed',
      result: { bits: 6 },
    });
  });

  test('byte arrays print as hex: wait on a RandomX HashBatch task gives the official vectors', async () => {
    const key = Buffer.from('test key 000');
    const inputs = ['This is a test', 'Lorem ipsum dolor sit amet'].map((s) => Buffer.from(s));
    const [path] = (await fx.client.call(
      `${ROOT}/RandomX`,
      `${IFACE}RandomX`,
      'HashBatch',
      'ayaaya{sv}',
      [key, inputs, { mode: variant('s', 'light'), threads: variant('u', 1) }],
    )) as [string];
    const vectors = [
      '639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f',
      '300a0adb47603dedb42228ccb2b211104f4da45af709cd7547cd049e9489c969',
    ];
    const json = await ctl('--json', 'wait', path);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { result: { hashes: string[] } };
    expect(doc.result.hashes).toEqual(vectors);
    const human = await ctl('wait', path);
    expect(human.stdout).toContain(`hashes: [${vectors.join(', ')}]`);
  });

  test.each([['task'], ['wait'], ['cancel'], ['pause'], ['resume']])(
    '%s of an unknown id is NotFound in one line, exit 1',
    async (cmd) => {
      const r = await ctl(cmd, 'abc');
      expect(r.stderr).toBe('vigilctl: org.vigil.Vigil1.Error.NotFound: no task abc\n');
      expect(r.code).toBe(1);
      // Not even a valid object-path element: the same answer, no crash.
      expectErrorLine(await ctl(cmd, 'no-such/task'), 'org.vigil.Vigil1.Error.NotFound');
    },
  );

  test('history lists finished tasks newest first; --limit and --json', async () => {
    const newest = await slowNoWait(3);
    expect((await ctl('wait', newest)).code).toBe(0);
    const json = await ctl('--json', 'history', '--limit', '2');
    expect(json.code).toBe(0);
    const records = JSON.parse(json.stdout) as Record<string, unknown>[];
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ Id: newest, State: 'completed', Kind: 'slow-random' });
    expect(Number(records[0].FinishTime)).toBeGreaterThanOrEqual(Number(records[1].FinishTime));

    const all = JSON.parse((await ctl('--json', 'history', '--limit', '0')).stdout) as unknown[];
    expect(all.length).toBeGreaterThan(2);

    const human = await ctl('history', '-n', '1');
    const lines = human.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+KIND\s+STATE\s+STARTED\s+FINISHED\s+TOOK\s+OUTCOME/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^${newest}\\s+slow-random\\s+completed.*bits=3`));
  });

  test.each([['x'], ['-1'], ['4294967296']])('history --limit %s is a usage error', async (n) => {
    const r = await ctl('history', '--limit', n);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/usage: vigilctl history/);
  });

  test('history --limit above the daemon maximum is its InvalidArgument', async () => {
    expectErrorLine(
      await ctl('history', '--limit', '20000'),
      'org.vigil.Vigil1.Error.InvalidArgument',
    );
  });

  test('status shows version and task counts', async () => {
    const r = await ctl('status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^vigil \S+ on the bus at unix:/);
    expect(r.stdout).toMatch(/tasks: \d+ running, \d+ queued, at most \d+ at once/);
    const doc = JSON.parse((await ctl('status', '--json')).stdout) as Record<string, unknown>;
    expect(typeof doc.Version).toBe('string');
    expect(typeof doc.MaxRunning).toBe('number');
    expect(Number(doc.StartTime)).toBeGreaterThan(0);
  });
});

describe('vigilctl cancel, pause, resume', () => {
  test('pause, resume, cancel a running task; wrong states are named errors', async () => {
    const id = await slowNoWait(400);
    await untilState(id, 'running');
    const paused = await ctl('pause', id);
    expect(paused.code).toBe(0);
    expect(paused.stdout).toBe(`${id} paused\n`);
    expect(await stateOf(id)).toBe('paused');

    expectErrorLine(await ctl('pause', id), 'org.vigil.Vigil1.Error.Failed');

    const resumed = await ctl('--json', 'resume', id);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ id, action: 'resume', state: 'running' });
    expectErrorLine(await ctl('resume', id), 'org.vigil.Vigil1.Error.Failed');

    const cancelled = await ctl('cancel', id);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(new RegExp(`^${id} (cancelling|cancelled)\n$`));

    // Waiting on a cancelled task: its error in one line and exit 4.
    const w = await ctl('wait', id);
    expectErrorLine(w, 'org.vigil.Vigil1.Error.Cancelled', 4);
    const wj = await ctl('--json', 'wait', id);
    expect(wj.code).toBe(4);
    expect(JSON.parse(wj.stdout)).toMatchObject({
      id,
      state: 'cancelled',
      error: { name: 'org.vigil.Vigil1.Error.Cancelled' },
    });

    // Cancelling a finished task is refused by the fx.daemon.
    const again = await ctl('cancel', id);
    expectErrorLine(again, 'org.vigil.Vigil1.Error.Failed');
    expect(again.stderr).toMatch(/cancelled/);
    expect(await stateOf(id)).toBe('cancelled');
  });

  test('wait follows a task cancelled by someone else and exits 4', async () => {
    const id = await slowNoWait(400);
    const waiter = new CtlProcess(['--bus', fx.bus.address, 'wait', id], isolatedEnv());
    await waiter.until((p) => p.stderr.includes(id), 'first progress line');
    await fx.client.call(taskPath(id), TASK_IFACE, 'Cancel');
    expect(await waiter.exited).toBe(4);
    expect(waiter.stderr).toMatch(/^vigilctl: org\.vigil\.Vigil1\.Error\.Cancelled: /m);
    expect(waiter.stdout).toBe('');
  });

  test('Ctrl-C while waiting stops waiting (exit 130) and leaves the task running', async () => {
    const id = await slowNoWait(400);
    const waiter = new CtlProcess(['--bus', fx.bus.address, 'wait', id], isolatedEnv());
    await waiter.until((p) => p.stderr.includes(id), 'first progress line');
    expect(await waiter.kill('SIGINT')).toBe(130);
    expect(waiter.stderr).toMatch(/keeps running/);
    expect(['running', 'queued']).toContain(await stateOf(id));
    await fx.client.call(taskPath(id), TASK_IFACE, 'Cancel');
  });
});

describe('vigilctl watch', () => {
  test('sees a task appear, progress and finish; other objects generically; Ctrl-C exits 0', async () => {
    const watch = new CtlProcess(['--bus', fx.bus.address, 'watch'], isolatedEnv());
    await watch.until((p) => p.stderr.includes('watching org.vigil.Vigil1'), 'ready line');
    // Objects that are not tasks are printed generically.
    expect(watch.stdout).toMatch(/^\+ \/org\/vigil\/Vigil1\/RandomData RandomData$/m);
    expect(watch.stdout).toMatch(/^\+ \/org\/vigil\/Vigil1\/Tasks TaskManager .*MaxRunning=\d+/m);

    const [id] = (await fx.client.call(RD, RD_IFACE, 'slow', 'i', [30])) as [string];
    await watch.until(
      (p) =>
        new RegExp(`^= task ${id} slow-random completed {2}result=\\d+ bits=30$`, 'm').test(
          p.stdout,
        ),
      'finished line',
    );
    const lines = watch.stdoutLines();
    const addedAt = lines.findIndex((l) => l.startsWith(`+ task ${id} slow-random`));
    const progressAt = lines.findIndex((l) => new RegExp(`^${id} .*running.*\\d+%`).test(l));
    const finishedAt = lines.findIndex((l) => l.startsWith(`= task ${id}`));
    expect(addedAt).toBeGreaterThanOrEqual(0);
    expect(progressAt).toBeGreaterThan(addedAt);
    expect(finishedAt).toBeGreaterThan(progressAt);
    // TaskManager counters are shown as they change, never the same values twice in a row.
    const counts = lines.filter((l) => l.startsWith('~ /org/vigil/Vigil1/Tasks '));
    expect(counts.length).toBeGreaterThan(0);
    counts.slice(1).forEach((l, i) => expect(l).not.toBe(counts[i]));
    // The tutorial signal shows up as a generic signal line.
    await watch.until((p) => p.stdout.includes(`RandomData.slow_result ${id}`), 'slow_result');
    expect(watch.stdout).not.toMatch(/\x1b\[/);
    expect(await watch.kill('SIGINT')).toBe(0);
  });

  test('--json watch prints one JSON event per line: added, progress, finished', async () => {
    const watch = new CtlProcess(['--bus', fx.bus.address, '--json', 'watch'], isolatedEnv());
    await watch.until((p) => p.stderr.includes('watching'), 'ready line');
    const [id] = (await fx.client.call(RD, RD_IFACE, 'slow', 'i', [25])) as [string];
    const path = taskPath(id);
    const events = (): Record<string, unknown>[] =>
      watch.stdoutLines().map((l) => JSON.parse(l) as Record<string, unknown>);
    await watch.until(
      () => events().some((e) => e.event === 'finished' && e.path === path),
      'finished event',
    );
    const mine = events().filter((e) => e.path === path);
    expect(mine[0]).toMatchObject({ event: 'added' });
    expect(
      (mine[0].interfaces as Record<string, Record<string, unknown>>)[TASK_IFACE],
    ).toMatchObject({
      Id: id,
      Kind: 'slow-random',
    });
    const progress = mine.filter((e) => e.event === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    for (const p of progress) {
      expect(typeof p.done).toBe('number');
      expect(p.total).toBe(25);
    }
    const fractions = progress.map((p) => p.progress as number);
    expect([...fractions].sort((a, b) => a - b)).toEqual(fractions);
    const finished = mine.find((e) => e.event === 'finished');
    expect(finished).toMatchObject({ id, state: 'completed', result: { bits: 25 } });
    expect(mine.some((e) => e.event === 'changed')).toBe(true);
    expect(await watch.kill('SIGTERM')).toBe(0);
  });
});

describe('vigilctl usage and connection errors', () => {
  test.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [[], /missing command/],
    [['random'], /random needs a subcommand/],
    [['random', 'fast', '3'], /random has no subcommand 'fast'/],
    [['task'], /missing argument/],
    [['tasks', 'extra'], /unexpected argument 'extra'/],
    [['random', 'slow', '8', '--bogus'], /Unknown option '--bogus'/],
    [['--session', '--system', 'tasks'], /choose one of/],
    [['--bus'], /--bus needs an ADDRESS/],
  ])('%p exits 2 with usage', async (args, message) => {
    const r = await ctl(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/[Uu]sage: vigilctl/);
    expect(r.stdout).toBe('');
  });

  test('--help lists every command and the exit codes; COMMAND --help shows its usage', async () => {
    const r = await ctl('--help');
    expect(r.code).toBe(0);
    for (const c of [
      'random quick',
      'random slow',
      'tasks',
      'task ID',
      'watch',
      'wait',
      'cancel',
      'pause',
      'resume',
      'history',
    ]) {
      expect(r.stdout).toContain(`  ${c}`);
    }
    expect(r.stdout).toMatch(/Exit status:/);
    expect(r.stdout).toMatch(/VIGIL_BUS_ADDRESS/);
    const h = await ctl('history', '--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Usage: vigilctl history \[--limit N\]/);
    expect((await ctl('help', 'random')).stdout).toMatch(/random quick BITS/);
    expect((await ctl('help', 'nonsense')).code).toBe(2);
    const v = await ctl('--version');
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^vigilctl \d+\.\d+\.\d+\n$/);
  });

  test('no bus at the address: one line, exit 3', async () => {
    const r = await runCtl(['--bus', 'unix:path=/nonexistent/vigil-test-bus', 'tasks']);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^vigilctl: cannot connect to the bus at unix:path=\/nonexistent/);
  });

  test.each([['garbage'], ['unix:'], ['tcp:host=x'], ['unix:path=/a,abstract=b']])(
    'a malformed address (%j): one line saying what is wrong, exit 3',
    async (address) => {
      const r = await runCtl(['--bus', address, 'status']);
      expect(r.code).toBe(3);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^vigilctl: invalid D-Bus address "/);
      expect(r.stderr).not.toMatch(/Cannot read properties|TypeError|at /);
    },
  );

  test('no session bus and no VIGIL_BUS_ADDRESS: says so, exit 3', async () => {
    const r = await runCtl(['tasks']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no session bus/);
  });

  test('VIGIL_BUS_ADDRESS is used when no bus option is given and there is no session bus', async () => {
    const r = await runCtl(
      ['random', 'quick', '8'],
      isolatedEnv({ VIGIL_BUS_ADDRESS: fx.bus.address }),
    );
    expect(r.code).toBe(0);
    expect(Number(r.stdout)).toBeLessThan(256);
    // An explicit --session does not fall back to it.
    const s = await runCtl(
      ['--session', 'random', 'quick', '8'],
      isolatedEnv({ VIGIL_BUS_ADDRESS: fx.bus.address }),
    );
    expect(s.code).toBe(3);
  });

  test('--session and --system use their standard addresses (pointed at the private bus here)', async () => {
    const session = await runCtl(
      ['random', 'quick', '8'],
      isolatedEnv({ DBUS_SESSION_BUS_ADDRESS: fx.bus.address }),
    );
    expect(session.code).toBe(0);
    const system = await runCtl(
      ['--system', 'random', 'quick', '8'],
      isolatedEnv({ DBUS_SYSTEM_BUS_ADDRESS: fx.bus.address }),
    );
    expect(system.code).toBe(0);
    expect(Number(system.stdout)).toBeLessThan(256);
    const none = await runCtl(
      ['--system', 'tasks'],
      isolatedEnv({ DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent/vigil-system-bus' }),
    );
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/^vigilctl: cannot connect to the system bus: .*\n$/);
  });

  test('a bus without vigil on it: ServiceUnknown in one line, exit 3', async () => {
    const empty = await startPrivateBus();
    try {
      const r = await runCtl(['--bus', empty.address, 'random', 'quick', '8']);
      expect(r.code).toBe(3);
      expectErrorLine(r, 'org.freedesktop.DBus.Error.ServiceUnknown', 3);
    } finally {
      await empty.stop();
    }
  });
});
