/**
 * A client that behaves as a hostile local user would, run as its own process (so as another
 * UID) by `runHostile`. Commands print one JSON line and exit, closing their connections:
 *
 *   hog ADDRESS COUNT CONNECTIONS PAUSE   slow(4096) COUNT times, then pause PAUSE running ones
 *   waits ADDRESS PATH CONNECTIONS EACH   EACH pending Task.Wait per connection, then leave
 *   churn ADDRESS MILLISECONDS            slow + Cancel in a loop
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BusConnection } from '../../src/bus/connection';
import { TestClient, IFACE, NAME, ROOT } from './client';

const RD = `${ROOT}/RandomData`;
const TASK = `${IFACE}Task`;

async function connections(address: string, n: number): Promise<TestClient[]> {
  return Promise.all(Array.from({ length: n }, () => TestClient.connect(address)));
}

const errorName = (e: unknown): string => (e as { type?: string }).type ?? String(e);

async function hog(address: string, count: number, conns: number, pause: number): Promise<unknown> {
  const clients = await connections(address, conns);
  const ids: string[] = [];
  const refused: string[] = [];
  for (let i = 0; i < count; i++) {
    try {
      const [id] = await clients[i % conns].call(RD, `${IFACE}RandomData`, 'slow', 'i', [4096]);
      ids.push(String(id));
    } catch (e) {
      refused.push(errorName(e));
    }
  }
  // Pause each task as it gets a slot, until PAUSE of them are paused.
  const paused: string[] = [];
  const deadline = Date.now() + 10_000;
  while (paused.length < pause && Date.now() < deadline) {
    for (const id of ids) {
      if (paused.includes(id) || paused.length >= pause) continue;
      const path = `${ROOT}/Tasks/${id}`;
      if ((await clients[0].get(path, TASK, 'State')) !== 'running') continue;
      await clients[0].call(path, TASK, 'Pause');
      paused.push(id);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const c of clients) c.close();
  return { ids, refused, paused };
}

async function waits(address: string, path: string, conns: number, each: number): Promise<unknown> {
  // Raw connections that send every call at once, as a hostile peer does (the project's own
  // connections hold calls back beyond 64 awaiting replies).
  const clients = await Promise.all(
    Array.from({ length: conns }, () => BusConnection.open(address, { maxPendingCalls: 1 << 20 })),
  );
  const call = (c: BusConnection, iface: string, member: string): Promise<unknown> =>
    c.call({ destination: NAME, path, interface: iface, member, signature: '', body: [] });
  const errors: Record<string, number> = {};
  let answered = 0;
  for (const c of clients) {
    for (let i = 0; i < each; i++) {
      call(c, TASK, 'Wait').then(
        () => answered++,
        (e: unknown) => {
          const name = errorName(e);
          errors[name] = (errors[name] ?? 0) + 1;
        },
      );
    }
  }
  // The daemon answers calls in order of arrival: once Ping answers, every Wait before it has
  // been taken in (and a refused one answered).
  await Promise.all(clients.map((c) => call(c, 'org.freedesktop.DBus.Peer', 'Ping')));
  await new Promise((r) => setTimeout(r, 200));
  // What the daemon answered; closing fails the calls still waiting, on our side only.
  const seen = { errors: { ...errors }, answered };
  for (const c of clients) c.close();
  return seen;
}

async function churn(address: string, ms: number): Promise<unknown> {
  const [c] = await connections(address, 1);
  const end = Date.now() + ms;
  let cycles = 0;
  const refused: Record<string, number> = {};
  while (Date.now() < end) {
    try {
      const [id] = await c.call(RD, `${IFACE}RandomData`, 'slow', 'i', [4096]);
      await c.call(`${ROOT}/Tasks/${String(id)}`, TASK, 'Cancel');
      cycles++;
    } catch (e) {
      const name = errorName(e);
      refused[name] = (refused[name] ?? 0) + 1;
    }
  }
  c.close();
  return { cycles, refused };
}

const run = promisify(execFile);

/** Run a hostile command as `uid` and return what it printed. */
export async function runHostile<T>(uid: number, args: (string | number)[]): Promise<T> {
  const { stdout } = await run(process.execPath, [__filename, ...args.map(String)], {
    uid,
    gid: uid,
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as T;
}

async function main(argv: string[]): Promise<void> {
  const [command, address, ...rest] = argv;
  const n = rest.map(Number);
  let out: unknown;
  if (command === 'hog') out = await hog(address, n[0], n[1], n[2]);
  else if (command === 'waits') out = await waits(address, rest[0], n[1], n[2]);
  else if (command === 'churn') out = await churn(address, n[0]);
  else throw new Error(`unknown command ${command}`);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exit(1);
  });
}
