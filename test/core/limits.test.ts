/**
 * Heavy history: results far bigger than the bus takes in one message. Lists carry summaries
 * (small results, under a byte budget), so they always fit; the full result is one GetTask
 * away for its owner.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStateDatabase } from '../../src/core/database';
import { typed } from '../../src/core/typed';
import { TaskHistory } from '../../src/tasks/history';
import { smallResult } from '../../src/tasks/summary';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { IFACE, plain, ROOT, TestClient } from '../helpers/client';
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
    const result = {
      hashes: typed.aay([Buffer.alloc(2 * 1024 * 1024, i)]),
      mode: typed.s('light'),
    };
    const summary = {
      id: `big${i}`,
      kind: 'randomx-batch',
      ownerUid: 0,
      privileged: true,
      state: 'completed' as const,
      result: smallResult(result),
      errorName: '',
      errorMessage: '',
      phase: 'hashing',
      done: 1,
      total: 1,
      progress: 1,
      createdTime: 1000 + i,
      startTime: 1000 + i,
      finishTime: 2000 + i,
    };
    history.insert(summary);
    history.save(summary, result);
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

test('GetHistory(0) over results bigger than a message answers summaries; GetTask has the full result', async () => {
  const [all] = (await client.call(
    `${ROOT}/Tasks`,
    `${IFACE}TaskManager`,
    'GetHistory',
    'u',
    [0],
  )) as [unknown[]];
  expect(all).toHaveLength(20);
  for (const entry of all.map((e) => plain(e) as { Result: Record<string, unknown> })) {
    expect(entry.Result).toEqual({ mode: 'light', omitted: ['hashes'] });
  }
  const [task] = (await client.call(`${ROOT}/Tasks`, `${IFACE}TaskManager`, 'GetTask', 's', [
    'big7',
  ])) as [unknown];
  const full = plain(task) as { Result: { hashes: Buffer[] }; OnBus: boolean };
  expect(full.OnBus).toBe(false);
  expect(full.Result.hashes[0].equals(Buffer.alloc(2 * 1024 * 1024, 7))).toBe(true);
  const unknown = await client.callError(`${ROOT}/Tasks`, `${IFACE}TaskManager`, 'GetTask', 's', [
    'nosuchtask',
  ]);
  expect(unknown.type).toBe(`${IFACE}Error.NotFound`);
  expect(daemon.child.exitCode).toBeNull();
});
