import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, NAME, ROOT, TestClient } from '../helpers/client';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';
import { ALLOWED_ERRORS } from './expected';
import { IndependentClient, Message } from './independent-client';
import {
  deepValue,
  parseSignature,
  randomIdentifier,
  randomInterfaceName,
  randomPath,
  randomSignature,
  randomValue,
  Rng,
} from './generate';

/**
 * Random calls (seeded: FUZZ_SEED reproduces a run) with real and made-up paths, interfaces,
 * members, signatures and values. Every call must be answered, with a return or a named error,
 * and the daemon must keep serving afterwards without logging an internal error.
 */
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
const CALLS = Number(process.env.FUZZ_CALLS ?? 3000);
const IN_FLIGHT = 32;
const CALL_TIMEOUT_MS = 10000;

const RD = `${ROOT}/RandomData`;
const TASKS = `${ROOT}/Tasks`;
const PROPS = 'org.freedesktop.DBus.Properties';
const INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable';
const PEER = 'org.freedesktop.DBus.Peer';
const OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager';

/**
 * Objects the calls aim at. The capabilities' objects get the standard interfaces and made-up
 * members; their own methods (hashing, wake packets) are not fuzzed here.
 */
const BASE_PATHS = [ROOT, RD, TASKS, `${ROOT}/RandomX`, `${ROOT}/WakeOnLan`];

/** Every real method: [interface, member, signature]. */
const REAL_METHODS: readonly [string, string, string][] = [
  [`${IFACE}RandomData`, 'quick', 'i'],
  [`${IFACE}RandomData`, 'slow', 'i'],
  [`${IFACE}TaskManager`, 'ListTasks', ''],
  [`${IFACE}TaskManager`, 'GetHistory', 'u'],
  [`${IFACE}Task`, 'Cancel', ''],
  [`${IFACE}Task`, 'Pause', ''],
  [`${IFACE}Task`, 'Resume', ''],
  [`${IFACE}Task`, 'Wait', ''],
  [`${IFACE}Task`, 'Input', 'a{sv}'],
  [PROPS, 'Get', 'ss'],
  [PROPS, 'GetAll', 's'],
  [PROPS, 'Set', 'ssv'],
  [INTROSPECTABLE, 'Introspect', ''],
  [PEER, 'Ping', ''],
  [PEER, 'GetMachineId', ''],
  [OBJECT_MANAGER, 'GetManagedObjects', ''],
];

interface FuzzCall {
  path: string;
  iface: string | undefined;
  member: string;
  signature: string;
  body: unknown[];
}

/** Where a real method lives, so half of the calls reach its handler. */
function homeOf(rng: Rng, iface: string, ourPaths: readonly string[]): string {
  const tasks = ourPaths.filter((p) => p.startsWith(`${TASKS}/`));
  if (iface === `${IFACE}RandomData`) return RD;
  if (iface === `${IFACE}TaskManager`) return TASKS;
  if (iface === `${IFACE}Task`) return tasks.length > 0 ? rng.pick(tasks) : `${TASKS}/none`;
  if (iface === OBJECT_MANAGER) return ROOT;
  return rng.pick(ourPaths);
}

function makeCall(rng: Rng, ourPaths: readonly string[]): FuzzCall {
  const real = rng.pick(REAL_METHODS);
  if (rng.chance(0.05)) {
    return { path: randomPath(rng, ourPaths), iface: real[0], member: real[1], ...deepValue(rng) };
  }
  let path: string;
  let iface: string | undefined;
  let member: string;
  if (rng.chance(0.5)) {
    // Aimed: a real method at its own object, sometimes without the interface field.
    path = homeOf(rng, real[0], ourPaths);
    iface = rng.chance(0.85) ? real[0] : undefined;
    member = real[1];
  } else {
    // Wild: paths, interfaces and members mixed and made up.
    path = randomPath(rng, ourPaths);
    member = rng.chance(0.6) ? real[1] : randomIdentifier(rng, rng.chance(0.1) ? 255 : 20);
    const roll = rng.next();
    iface =
      roll < 0.5
        ? real[0]
        : roll < 0.7
          ? rng.pick(REAL_METHODS)[0]
          : roll < 0.85
            ? randomInterfaceName(rng)
            : undefined;
  }
  const sigRoll = rng.next();
  const signature = sigRoll < 0.6 ? real[2] : sigRoll < 0.7 ? '' : randomSignature(rng);
  const body = parseSignature(signature).map((t) => randomValue(rng, t, ourPaths));
  return { path, iface, member, signature, body };
}

function callRng(index: number): Rng {
  return new Rng((SEED ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0);
}

function describeCall(c: FuzzCall): string {
  return `${c.path} ${c.iface ?? '(no interface)'}.${c.member.slice(0, 40)}(${c.signature})`;
}

let bus: PrivateBus;
let daemon: DaemonProcess;
let fuzzer: IndependentClient;
let observer: TestClient;

beforeAll(async () => {
  console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} reproduces the generated calls)`);
  bus = await startPrivateBus();
  daemon = await startDaemon(bus.address, { args: ['--slow-pace-ms', '5'] });
  fuzzer = await IndependentClient.connect(bus.address);
  observer = await TestClient.connect(bus.address);
});

afterAll(async () => {
  fuzzer?.close();
  observer?.close();
  await daemon?.stop();
  await bus?.stop();
});

type Outcome =
  { kind: 'return' } | { kind: 'error'; name: string; text: string } | { kind: 'timeout' };

function callWithTimeout(
  client: IndependentClient,
  msg: Message,
  timeoutMs: number,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutMs);
    client.bus.call(msg).then(
      () => {
        clearTimeout(timer);
        resolve({ kind: 'return' });
      },
      (e: unknown) => {
        clearTimeout(timer);
        const err = e as { type?: string; text?: string };
        resolve({ kind: 'error', name: err.type ?? String(e), text: err.text ?? '' });
      },
    );
  });
}

function message(c: FuzzCall, flags = 0): Message {
  return new Message({
    destination: NAME,
    path: c.path,
    interface: c.iface,
    member: c.member,
    signature: c.signature,
    body: c.body,
    flags,
  });
}

async function currentTaskPaths(): Promise<string[]> {
  const [paths] = (await observer.call(TASKS, `${IFACE}TaskManager`, 'ListTasks')) as [string[]];
  return paths;
}

/** Cancel whatever the fuzzing left queued, running or paused (so pending Waits can end). */
async function cancelAllTasks(): Promise<void> {
  for (const p of await currentTaskPaths()) {
    await observer.call(p, `${IFACE}Task`, 'Cancel').catch(() => undefined);
  }
}

async function expectStillServing(): Promise<void> {
  expect(daemon.child.exitCode).toBeNull();
  const [s] = (await observer.call(RD, `${IFACE}RandomData`, 'quick', 'i', [16])) as [string];
  expect(Number(s)).toBeLessThan(65536);
}

/** Lines where the daemon logged an error (e.g. a handler that threw something unnamed). */
function internalErrors(): string[] {
  return daemon
    .output()
    .split('\n')
    .filter((l) => /^\S+ (error|crit|alert|emerg):|unhandled|uncaught/i.test(l));
}

test(`${CALLS} random calls all get an answer, and the daemon keeps serving`, async () => {
  const counts = new Map<string, number>();
  const unexpected: string[] = [];
  const pendingWaits: { index: number; call: FuzzCall; outcome: Promise<Outcome> }[] = [];
  let ourPaths = [...BASE_PATHS, ...(await currentTaskPaths())];
  let next = 0;

  const worker = async (): Promise<void> => {
    while (next < CALLS) {
      const index = next++;
      if (index % 200 === 0) ourPaths = [...BASE_PATHS, ...(await currentTaskPaths())];
      // One generator per call: call #index is the same for a seed whatever the scheduling.
      const call = makeCall(callRng(index), ourPaths);
      const msg = message(call);
      // Wait on a live task legitimately answers only when the task ends: collect those and
      // check they are answered once the tasks are cancelled.
      if (call.member === 'Wait' && call.path.startsWith(`${TASKS}/`)) {
        pendingWaits.push({ index, call, outcome: callWithTimeout(fuzzer, msg, 120000) });
        continue;
      }
      const outcome = await callWithTimeout(fuzzer, msg, CALL_TIMEOUT_MS);
      const key = outcome.kind === 'error' ? outcome.name : outcome.kind;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (outcome.kind === 'timeout' || (outcome.kind === 'error' && !ALLOWED_ERRORS.has(key))) {
        unexpected.push(`#${index} ${key}: ${describeCall(call)}`);
      }
      // The contract's error messages are one short human line, whatever the caller sent.
      if (outcome.kind === 'error' && !/^[^\n\r]{1,300}$/.test(outcome.text)) {
        unexpected.push(
          `#${index} ${key} with a bad message (${outcome.text.length} chars): ${describeCall(call)}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));

  await cancelAllTasks();
  const waitOutcomes = await Promise.all(
    pendingWaits.map(async (w) => {
      const o = await Promise.race([
        w.outcome,
        new Promise<Outcome>((r) => setTimeout(() => r({ kind: 'timeout' }), 15000).unref()),
      ]);
      return { index: w.index, call: w.call, o };
    }),
  );
  for (const { index, call, o } of waitOutcomes) {
    const key = o.kind === 'error' ? o.name : o.kind;
    counts.set(`Wait:${key}`, (counts.get(`Wait:${key}`) ?? 0) + 1);
    if (o.kind === 'timeout' || (o.kind === 'error' && !ALLOWED_ERRORS.has(key))) {
      unexpected.push(`#${index} Wait ${key}: ${describeCall(call)}`);
    }
  }

  console.log(
    `fuzz seed ${SEED}: ${CALLS} calls\n` +
      [...counts.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `  ${String(n).padStart(5)}  ${k}`)
        .join('\n'),
  );
  expect(unexpected).toEqual([]);
  // The answers were not all the same error: the fuzzing reached the handlers.
  expect(counts.get('return') ?? 0).toBeGreaterThan(CALLS / 20);
  expect(counts.get('org.freedesktop.DBus.Error.InvalidArgs') ?? 0).toBeGreaterThan(CALLS / 20);
  await expectStillServing();
  expect(internalErrors()).toEqual([]);
}, 240000);

test('calls sent with NO_REPLY_EXPECTED are taken without harm and never answered', async () => {
  // A bus monitor sees every reply the daemon sends, even one the bus would refuse to deliver.
  const monitor = await IndependentClient.connect(bus.address);
  const replies: Message[] = [];
  monitor.bus.on('message', (m: Message) => {
    if (m.destination === fuzzer.uniqueName && m.replySerial !== undefined) replies.push(m);
  });
  await monitor.bus.call(
    new Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus.Monitoring',
      member: 'BecomeMonitor',
      signature: 'asu',
      body: [["type='method_return'", "type='error'"], 0],
    }),
  );
  try {
    const rng = new Rng(SEED ^ 0x5a5a5a5a);
    const ourPaths = [...BASE_PATHS, ...(await currentTaskPaths())];
    const serials = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const msg = message(makeCall(rng, ourPaths), 1);
      fuzzer.bus.send(msg);
      serials.add(msg.serial as number);
    }
    // Messages on one connection arrive in order: once this answers, all 500 were read.
    await fuzzer.call(ROOT, PEER, 'Ping');
    await expectStillServing();
    await cancelAllTasks();
    // One more round trip through the bus so that any stray reply has reached the monitor.
    await fuzzer.call(ROOT, PEER, 'Ping');
    expect(replies.length).toBeGreaterThan(0); // the monitor works: it saw the Pings' replies
    expect(replies.filter((m) => serials.has(Number(m.replySerial)))).toEqual([]);
    expect(internalErrors()).toEqual([]);
  } finally {
    monitor.close();
  }
});

describe('standard interfaces with bad arguments answer named errors', () => {
  const cases: [string, string, string, string, unknown[], RegExp][] = [
    [ROOT, PROPS, 'Get', 's', [`${IFACE}Daemon`], /InvalidArgs/],
    [ROOT, PROPS, 'Get', 'sss', [`${IFACE}Daemon`, 'Version', 'x'], /InvalidArgs/],
    [ROOT, PROPS, 'Get', '', [], /InvalidArgs/],
    [ROOT, PROPS, 'Get', 'ss', ['no.such.Iface', 'Version'], /UnknownInterface|UnknownProperty/],
    [ROOT, PROPS, 'Get', 'ss', [`${IFACE}Daemon`, 'NoSuch'], /UnknownProperty/],
    [ROOT, PROPS, 'GetAll', 'i', [1], /InvalidArgs/],
    [ROOT, PROPS, 'GetAll', 's', ['no.such.Iface'], /UnknownInterface/],
    [ROOT, PROPS, 'Set', 'ss', [`${IFACE}Daemon`, 'Version'], /InvalidArgs/],
    [ROOT, PROPS, 'Set', 'ssi', [`${IFACE}Daemon`, 'Version', 1], /InvalidArgs/],
    [ROOT, PROPS, 'Frobnicate', '', [], /UnknownMethod/],
    [RD, INTROSPECTABLE, 'Introspect', 's', ['extra'], /InvalidArgs/],
    [RD, INTROSPECTABLE, 'Frobnicate', '', [], /UnknownMethod/],
    [RD, PEER, 'Ping', 'i', [1], /InvalidArgs/],
    [RD, PEER, 'GetMachineId', 's', ['x'], /InvalidArgs/],
    [RD, PEER, 'Frobnicate', '', [], /UnknownMethod/],
    [ROOT, OBJECT_MANAGER, 'GetManagedObjects', 's', ['x'], /InvalidArgs/],
    [ROOT, OBJECT_MANAGER, 'Frobnicate', '', [], /UnknownMethod/],
    [RD, OBJECT_MANAGER, 'GetManagedObjects', '', [], /UnknownInterface|UnknownMethod/],
    [`${ROOT}/Nowhere`, OBJECT_MANAGER, 'GetManagedObjects', '', [], /UnknownObject|NotFound/],
    [`${ROOT}/Nowhere`, PROPS, 'GetAll', 's', [`${IFACE}Daemon`], /UnknownObject|NotFound/],
    ['/', PEER, 'Ping', 'i', [1], /InvalidArgs/],
  ];

  test.each(cases)('%s %s.%s(%s)', async (path, iface, member, sig, body, expected) => {
    const err = await observer.callError(path, iface, member, sig, body);
    expect(err.type).toMatch(expected);
    expect(err.text.length).toBeGreaterThan(0);
  });

  test('the well-formed versions of the same calls succeed', async () => {
    await observer.call(RD, PEER, 'Ping');
    await observer.call('/', PEER, 'Ping');
    const [id] = (await observer.call(RD, PEER, 'GetMachineId')) as [string];
    expect(typeof id).toBe('string');
    const [xml] = (await observer.call(RD, INTROSPECTABLE, 'Introspect')) as [string];
    expect(xml).toContain(`${IFACE}RandomData`);
    const [objects] = (await observer.call(ROOT, OBJECT_MANAGER, 'GetManagedObjects')) as [
      Record<string, unknown>,
    ];
    expect(Object.keys(objects)).toContain(TASKS);
    await expectStillServing();
  });
});
