import { BusConnection, callBusDaemon } from '../../src/bus/connection';
import { encodeRaw, FIELD, SIGNAL, type OutgoingMessage } from '../../src/bus/wire/message';
import { Variant } from '../../src/bus/wire/variant';

/**
 * `node forge.js ADDRESS TARGET TASK_ID ROUNDS`: a hostile local client imitating vigil's
 * signals (slow_result, Finished, Progress, PropertiesChanged, InterfacesAdded, and one with an
 * fd index and no fd), each sent ROUNDS times straight to TARGET (a unique name) and as a
 * broadcast. Prints "sent N" when every one has reached the bus.
 */
const ROOT = '/org/vigil/Vigil1';
const IFACE = 'org.vigil.Vigil1.';
export const FORGED_VALUE = '31337';

function forgeries(taskId: string): OutgoingMessage[] {
  const task = `${ROOT}/Tasks/${taskId}`;
  const result = { result: new Variant('s', FORGED_VALUE) };
  return [
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
  const [address, target, taskId, rounds] = process.argv.slice(2);
  const conn = await BusConnection.open(address);
  let sent = 0;
  for (let i = 0; i < Number(rounds); i++) {
    for (const m of forgeries(taskId)) {
      conn.send({ ...m, destination: target });
      conn.send(m);
      sent += 2;
    }
    conn.sendRaw(hostileFd(conn, taskId, target));
    conn.sendRaw(hostileFd(conn, taskId));
    sent += 2;
  }
  // Messages on one connection stay in order: once the bus answers this, it has them all.
  await callBusDaemon(conn, 'GetId');
  console.log(`sent ${sent}`);
  conn.close();
}

if (require.main === module) void main();
