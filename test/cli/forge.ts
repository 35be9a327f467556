import { spawn } from 'node:child_process';
import { BusConnection, callBusDaemon } from '../../src/bus/connection';
import { encodeRaw, FIELD, SIGNAL, type OutgoingMessage } from '../../src/bus/wire/message';
import { Variant } from '../../src/bus/wire/variant';
import type { TestClient } from '../helpers/client';

/**
 * `node forge.js ADDRESS TARGETS TASK_ID ROUNDS`: a hostile local client imitating vigil's
 * signals (slow_result, Finished, Progress, PropertiesChanged, InterfacesAdded, and one with an
 * fd index and no fd) after a NameOwnerChanged that names the forger vigil's owner, each sent
 * ROUNDS times straight to every one of TARGETS (unique names, comma-separated) and as a
 * broadcast. Prints "sent N" when every one has reached the bus.
 */
const ROOT = '/org/vigil/Vigil1';
const IFACE = 'org.vigil.Vigil1.';
export const FORGED_VALUE = '31337';

/**
 * What the forger sends, in order. First a NameOwnerChanged claiming that the forger now owns
 * org.vigil.Vigil1: a client that believed it (instead of checking that it comes from
 * org.freedesktop.DBus, a sender only the bus daemon has) would then take all that follows as
 * vigil's.
 */
function forgeries(taskId: string, self: string): OutgoingMessage[] {
  const task = `${ROOT}/Tasks/${taskId}`;
  const result = { result: new Variant('s', FORGED_VALUE) };
  return [
    {
      type: SIGNAL,
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'NameOwnerChanged',
      signature: 'sss',
      body: ['org.vigil.Vigil1', '', self],
    },
    {
      type: SIGNAL,
      path: `${ROOT}/RandomData`,
      interface: `${IFACE}RandomData`,
      member: 'slow_result',
      signature: 'ss',
      body: [taskId, FORGED_VALUE],
    },
    {
      type: SIGNAL,
      path: task,
      interface: `${IFACE}Task`,
      member: 'Progress',
      signature: 'dttd',
      body: [0.999, 999n, 999n, 1e9],
    },
    {
      type: SIGNAL,
      path: task,
      interface: 'org.freedesktop.DBus.Properties',
      member: 'PropertiesChanged',
      signature: 'sa{sv}as',
      body: [
        `${IFACE}Task`,
        { State: new Variant('s', 'completed'), Result: new Variant('a{sv}', result) },
        [],
      ],
    },
    {
      type: SIGNAL,
      path: task,
      interface: `${IFACE}Task`,
      member: 'Finished',
      signature: 'sa{sv}',
      body: ['completed', result],
    },
    {
      type: SIGNAL,
      path: ROOT,
      interface: 'org.freedesktop.DBus.ObjectManager',
      member: 'InterfacesAdded',
      signature: 'oa{sa{sv}}',
      body: [
        `${ROOT}/Tasks/forged${FORGED_VALUE}`,
        { [`${IFACE}Task`]: { Id: new Variant('s', `forged${FORGED_VALUE}`) } },
      ],
    },
  ];
}

/** A Finished whose body holds an fd index with no fd (and no UNIX_FDS header). */
function hostileFd(conn: BusConnection, taskId: string, destination?: string): Buffer {
  return encodeRaw({
    type: SIGNAL,
    serial: conn.nextSerial(),
    fields: [
      [FIELD.PATH, 'o', `${ROOT}/Tasks/${taskId}`],
      [FIELD.INTERFACE, 's', `${IFACE}Task`],
      [FIELD.MEMBER, 's', 'Finished'],
      ...(destination ? [[FIELD.DESTINATION, 's', destination] as const] : []),
      [FIELD.SIGNATURE, 'g', 'h'],
    ],
    body: Buffer.from([0, 0, 0, 0]),
  });
}

async function main(): Promise<void> {
  const [address, targetList, taskId, rounds] = process.argv.slice(2);
  const targets = targetList.split(',').filter((t) => t !== '');
  const conn = await BusConnection.open(address);
  let sent = 0;
  for (let i = 0; i < Number(rounds); i++) {
    for (const m of forgeries(taskId, conn.uniqueName)) {
      for (const target of targets) conn.send({ ...m, destination: target });
      conn.send(m);
      sent += targets.length + 1;
    }
    for (const target of targets) conn.sendRaw(hostileFd(conn, taskId, target));
    conn.sendRaw(hostileFd(conn, taskId));
    sent += targets.length + 1;
  }
  // Messages on one connection stay in order: once the bus answers this, it has them all.
  await callBusDaemon(conn, 'GetId');
  console.log(`sent ${sent}`);
  conn.close();
}

/** The unique name of the bus connection that process `pid` holds (asked through `client`). */
export async function uniqueNameOf(client: TestClient, pid: number): Promise<string> {
  for (let tries = 0; tries < 200; tries++) {
    const [names] = (await client.busCall('ListNames')) as [string[]];
    for (const name of names.filter((n) => n.startsWith(':'))) {
      const [owner] = await client
        .busCall('GetConnectionUnixProcessID', 's', [name])
        .catch(() => [-1]);
      if (owner === pid) return name;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`process ${pid} has no bus connection`);
}

/**
 * Run the forger as `uid` on the bus at `address`, aiming at `targets` with `taskId`'s paths;
 * resolves with its "sent N" once everything it sent has reached the bus.
 */
export function forge(
  address: string,
  uid: number,
  targets: readonly string[],
  taskId: string,
  rounds = 20,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [__filename, address, targets.join(','), taskId, String(rounds)],
      { uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('close', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`forger exited ${code}: ${out}`)),
    );
  });
}

if (require.main === module) void main();
