import { IFACE, ROOT } from '../helpers/client';
import { MULTIUSER_BUS_CONFIG, useDaemon } from '../helpers/fixture';
import { forge as forgeAs, FORGED_VALUE, uniqueNameOf } from './forge';
import { CtlProcess, isolatedEnv } from './run';

/**
 * Issue 13, finding 1: another connection, of the same user or of another (uid 65534), sends
 * vigilctl signals that imitate vigil's, straight to its unique name. vigilctl must believe
 * only the unique name that owns org.vigil.Vigil1.
 */
const fx = useDaemon({ busConfig: MULTIUSER_BUS_CONFIG, args: ['--slow-pace-ms', '300'] });
const NOBODY = 65534;
const TASKS = `${ROOT}/Tasks`;

const forge = (uid: number, target: string, taskId: string): Promise<string> =>
  forgeAs(fx.bus.address, uid, [target], taskId);

test('vigilctl random slow prints the real value, not forged slow_result/Finished/Progress', async () => {
  const ctl = new CtlProcess(['--bus', fx.bus.address, 'random', 'slow', '3'], isolatedEnv());
  await ctl.until((p) => p.stdoutLines().length >= 1, 'the task id');
  const id = ctl.stdoutLines()[0];
  const target = await uniqueNameOf(fx.client, ctl.child.pid as number);
  // Both forgers are done well before the 0.9 s task completes.
  expect(await forge(0, target, id)).toMatch(/^sent \d+$/);
  expect(await forge(NOBODY, target, id)).toMatch(/^sent \d+$/);
  expect(await ctl.exited).toBe(0);
  const printed = ctl.stdoutLines()[1];
  expect(printed).not.toBe(FORGED_VALUE);
  const [record] = (await fx.client.call(TASKS, `${IFACE}TaskManager`, 'GetTask', 's', [id])) as [
    Record<string, { value: unknown }>,
  ];
  const result = record.Result.value as Record<string, { value: unknown }>;
  expect(printed).toBe(String(result.result.value));
  expect(Number(printed)).toBeLessThan(8);
});

test('vigilctl watch shows no forged event, ignores an fd-index signal and keeps running', async () => {
  const watch = new CtlProcess(['--bus', fx.bus.address, '--json', 'watch'], isolatedEnv());
  await watch.until((p) => p.stderr.includes('watching'), 'ready line');
  const target = await uniqueNameOf(fx.client, watch.child.pid as number);
  const [id] = (await fx.client.call(
    `${ROOT}/RandomData`,
    `${IFACE}RandomData`,
    'slow',
    'i',
    [2],
  )) as [string];
  await forge(0, target, id);
  await forge(NOBODY, target, id);
  await watch.until(
    (p) => p.stdoutLines().some((l) => l.includes('"finished"') && l.includes(id)),
    'the real finished event',
  );
  expect(watch.child.exitCode).toBeNull();
  expect(watch.stdout).not.toContain(FORGED_VALUE);
  expect(watch.stdout).not.toContain('forged');
  expect(watch.stdout).not.toMatch(/"progress":0\.999|"done":999/);
  // Still following real events after all that.
  const [second] = (await fx.client.call(
    `${ROOT}/RandomData`,
    `${IFACE}RandomData`,
    'slow',
    'i',
    [1],
  )) as [string];
  await watch.until(
    (p) => p.stdoutLines().some((l) => l.includes('"finished"') && l.includes(second)),
    'a later real event',
  );
  expect(await watch.kill('SIGINT')).toBe(0);
});
