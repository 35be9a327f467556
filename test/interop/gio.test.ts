import fs from 'node:fs';
import path from 'node:path';
import { startPrivateBus, type PrivateBus } from '../helpers/bus';
import { ROOT } from '../helpers/client';
import { startDaemon, type DaemonProcess } from '../helpers/daemon';
import { INTEROP_SOURCE, run, type RunResult, SYSTEM_PYTHON } from './tools';

/**
 * GLib's GDBusObjectManagerClient and GDBusProxy (through Python's gi) follow a slow task from
 * InterfacesAdded through PropertiesChanged, Progress and Finished to InterfacesRemoved:
 * the ObjectManager and the signals as a client library no one here wrote understands them.
 */
const WATCH = path.join(INTEROP_SOURCE, 'gio_watch.py');
const BITS = 6;

let bus: PrivateBus;
let daemon: DaemonProcess;
let watched: RunResult;
let lines: string[];

beforeAll(async () => {
  bus = await startPrivateBus();
  const config = path.join(bus.dir, 'vigil.conf');
  // Finished tasks leave the bus after one second, so the removal is seen too.
  fs.writeFileSync(config, '[daemon]\nretention_seconds = 1\n');
  daemon = await startDaemon(bus.address, {
    args: ['--slow-pace-ms', '50', '--config', config],
  });
  watched = await run(SYSTEM_PYTHON, [WATCH, bus.address, String(BITS), '20'], {
    timeoutMs: 30000,
  });
  lines = watched.stdout.trim().split('\n');
});

afterAll(async () => {
  await daemon?.stop();
  await bus?.stop();
});

const taskPath = (): string => {
  const id = lines.find((l) => l.startsWith('slow '))?.split(' ')[1];
  if (!id) throw new Error(`no task id in:\n${watched.stdout}${watched.stderr}`);
  return `${ROOT}/Tasks/${id}`;
};

test('GDBusObjectManagerClient starts from GetManagedObjects with the core objects', () => {
  expect(watched.stderr).toBe('');
  expect(watched.code).toBe(0);
  const initial = lines.filter((l) => l.startsWith('initial ')).map((l) => l.slice(8));
  expect(initial).toEqual(expect.arrayContaining([`${ROOT}/RandomData`, `${ROOT}/Tasks`]));
});

test('the task appears through InterfacesAdded with its Task interface', () => {
  expect(lines).toContain(`added ${taskPath()} org.vigil.Vigil1.Task`);
});

test('Progress signals never go back and end at 1 with done = total', () => {
  const progress = lines
    .filter((l) => l.startsWith('progress '))
    .map((l) => l.split(' ').slice(1).map(Number));
  expect(progress.length).toBeGreaterThan(0);
  for (let i = 1; i < progress.length; i++) {
    expect(progress[i][0]).toBeGreaterThanOrEqual(progress[i - 1][0]);
  }
  expect(progress[progress.length - 1]).toEqual([1, BITS, BITS]);
});

test('the proxy property cache follows State through PropertiesChanged to completed', () => {
  const states = lines.filter((l) => l.startsWith('state ')).map((l) => l.slice(6));
  expect(states[states.length - 1]).toBe('completed');
});

test('Finished arrives exactly once, then the object leaves through InterfacesRemoved', () => {
  const finished = lines.filter((l) => l.startsWith('finished '));
  expect(finished).toHaveLength(1);
  const [, state, value] = finished[0].split(' ');
  expect(state).toBe('completed');
  expect(Number(value)).toBeLessThan(2 ** BITS);
  const removedAt = lines.indexOf(`removed ${taskPath()}`);
  expect(removedAt).toBeGreaterThan(lines.indexOf(finished[0]));
});
