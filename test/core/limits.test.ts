/**
 * A reply bigger than the bus accepts must be refused by vigil: dbus-daemon drops a connection
 * that sends one, which would take the whole daemon off the bus.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStateDatabase } from '../../src/core/database';
import { typed } from '../../src/core/typed';
import { TaskHistory } from '../../src/tasks/history';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, ROOT, TestClient } from '../helpers/client';
import { startDaemon, tempStateDir, type DaemonProcess } from '../helpers/daemon';

let bus: PrivateBus;
let daemon: DaemonProcess;
let client: TestClient;

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-limits-'));
  const config = path.join(dir, 'bus.conf');
  // The reference dbus-daemon's default limit, as on a stock system bus.
  fs.writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${path.join(dir, 'unused')}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_message_size">33554432</limit>
</busconfig>
`,
  );
  bus = await startPrivateBus(config);

  // History holding more than the bus takes in one message: 20 finished jobs of 2 MiB results.
  const stateDir = tempStateDir();
  const db = openStateDatabase(stateDir);
  const history = new TaskHistory(db);
  for (let i = 0; i < 20; i++) {
    history.save({
      id: `big${i}`,
      kind: 'randomx-batch',
      ownerUid: 0,
      state: 'completed',
      params: {},
      result: { hashes: typed.aay([Buffer.alloc(2 * 1024 * 1024, i)]) },
      errorName: '',
      errorMessage: '',
      phase: 'hashing',
      done: 1,
      total: 1,
      progress: 1,
      createdTime: 1000 + i,
      startTime: 1000 + i,
      finishTime: 2000 + i,
      checkpoint: undefined,
    });
  }
  db.close();
  daemon = await startDaemon(bus.address, { stateDir });
  client = await TestClient.connect(bus.address);
}, 60000);

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
});

test('a reply over the bus message limit is LimitExceeded, and vigil stays on the bus', async () => {
  const error = await client.callError(
    `${ROOT}/Tasks`,
    `${IFACE}TaskManager`,
    'GetHistory',
    'u',
    [0],
  );
  expect(error.type).toBe(`${IFACE}Error.LimitExceeded`);
  // Asking for less works, on the same connection of the same daemon.
  const [few] = (await client.call(
    `${ROOT}/Tasks`,
    `${IFACE}TaskManager`,
    'GetHistory',
    'u',
    [2],
  )) as [unknown[]];
  expect(few).toHaveLength(2);
  expect(daemon.child.exitCode).toBeNull();
});
