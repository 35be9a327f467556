/**
 * RandomX throughput, side by side in one run on one machine: the reference (librandomx
 * straight from C, ../shared/reference/rxref.c) and vigil's Benchmark over D-Bus, both with
 * the same thread count, in light and fast mode; plus vigil's rate while `vigilctl watch` is
 * subscribed to every progress signal.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/randomx/compare.js [--reps N]
 *     [--threads T] [--light-nonces N] [--fast-nonces N] [--fast-reps N] [--no-fast]
 *
 * Prints a Markdown table for BENCHMARKS.md and writes bench/out/randomx.json.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connectionPid, startPrivateBus } from '../../test/helpers/bus';
import {
  buildReference,
  cpuSeconds,
  median,
  report,
  runBench,
  runRxref,
  rxrefField,
  withReservedPages,
} from './common';
import { TestClient, plain, variant } from '../../test/helpers/client';
import {
  RX_IFACE,
  RX_PATH,
  TASK_IFACE,
  randomxConfig,
  startRxDaemon,
  tempDir,
} from '../../test/randomx/daemon';

const ROOT = path.resolve(__dirname, '../../..');
const REFERENCE_SOURCE = path.resolve(ROOT, '../shared/reference/rxref.c');
const VIGILCTL = path.join(ROOT, 'dist/src/cli/vigilctl.js');
/**
 * The reference's key. Light-mode hashing and dataset building cost depend on the key (its
 * SuperscalarHash programs vary in length), so both sides must use the same one.
 */
const KEY = Buffer.from('test key 000');

interface Run {
  who: 'reference' | 'reference+largepages' | 'vigil' | 'vigil+watch';
  mode: 'light' | 'fast';
  threads: number;
  nonces: number;
  hps: number;
  initSeconds: number;
  hashSeconds: number;
  cost?: ProgressCost;
}

async function runReference(
  binary: string,
  mode: 'light' | 'fast',
  threads: number,
  nonces: number,
  largePages = false,
): Promise<Run> {
  const args = ['--threads', String(threads), '--nonces', String(nonces)];
  if (mode === 'fast') args.unshift('--full');
  if (largePages) args.unshift('--largepages');
  const run = (): ReturnType<typeof runRxref> => runRxref(binary, args, threads);
  const { output } = largePages ? await withReservedPages(run) : await run();
  return {
    who: largePages ? 'reference+largepages' : 'reference',
    mode,
    threads,
    nonces,
    hps: rxrefField(output, 'hps'),
    initSeconds: rxrefField(output, 'init_s'),
    hashSeconds: rxrefField(output, 'hash_s'),
  };
}

async function runVigil(
  client: TestClient,
  who: Run['who'],
  mode: 'light' | 'fast',
  threads: number,
  nonces: number,
  key?: Buffer,
): Promise<Run> {
  const options: Record<string, ReturnType<typeof variant>> = {
    mode: variant('s', mode),
    threads: variant('u', threads),
  };
  if (key) options.key = variant('ay', key);
  const [task] = (await client.call(RX_PATH, RX_IFACE, 'Benchmark', 'ua{sv}', [
    nonces,
    options,
  ])) as string[];
  const [result] = await client.call(task, TASK_IFACE, 'Wait');
  const r = plain(result) as Record<string, number>;
  return {
    who,
    mode,
    threads,
    nonces,
    hps: r.hashrate,
    initSeconds: r.init_seconds,
    hashSeconds: r.hash_seconds,
  };
}

/** The dbus-daemon's own pid, as the bus reports it for its driver name. */
async function busPid(client: TestClient): Promise<number> {
  return connectionPid(client.bus, 'org.freedesktop.DBus');
}

/**
 * What the progress path costs while `fn` runs: CPU of the daemon's main thread (it turns
 * worker reports into task properties and signals), of the dbus-daemon and of the watcher.
 */
interface ProgressCost {
  mainThread: number;
  bus: number;
  watcher: number;
  watcherLines: number;
}

/** `vigilctl watch` subscribed to everything while `fn` runs. */
async function withWatcher<T>(
  address: string,
  pids: { daemon: number; bus: number },
  fn: () => Promise<T>,
): Promise<[T, ProgressCost]> {
  const watch = spawn(process.execPath, [VIGILCTL, '--bus', address, 'watch'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let lines = 0;
  watch.stdout.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
  watch.stderr.resume();
  await new Promise((r) => setTimeout(r, 1000));
  const watchPid = watch.pid ?? 0;
  const before = [cpuSeconds(pids.daemon, pids.daemon), cpuSeconds(pids.bus), cpuSeconds(watchPid)];
  try {
    const result = await fn();
    const after = [
      cpuSeconds(pids.daemon, pids.daemon),
      cpuSeconds(pids.bus),
      cpuSeconds(watchPid),
    ];
    const cost: ProgressCost = {
      mainThread: after[0] - before[0],
      bus: after[1] - before[1],
      watcher: after[2] - before[2],
      watcherLines: lines,
    };
    return [result, cost];
  } finally {
    watch.kill('SIGINT');
    await new Promise((r) => watch.once('exit', r));
  }
}

/** The progress path's CPU as a share of what the hashing threads had, for the table. */
function costShare(run: Run | undefined): string {
  if (!run?.cost) return 'n/a';
  const cpu = run.cost.mainThread + run.cost.bus + run.cost.watcher;
  return `${((cpu / (run.hashSeconds * run.threads)) * 100).toFixed(2)}%`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' },
      threads: { type: 'string', default: '2' },
      'light-nonces': { type: 'string', default: '500' },
      'fast-nonces': { type: 'string', default: '4000' },
      'fast-reps': { type: 'string', default: '2' },
      'no-fast': { type: 'boolean', default: false },
      // Beside the repository as /work/main sits beside /work/shared; elsewhere, name it.
      reference: { type: 'string', default: REFERENCE_SOURCE },
    },
  });
  const reps = Number(values.reps);
  const threads = Number(values.threads);
  const lightNonces = Number(values['light-nonces']);
  const fastNonces = Number(values['fast-nonces']);
  const fastReps = Number(values['fast-reps']);

  const reference = buildReference(values.reference);
  const bus = await startPrivateBus();
  // No dataset cache: every fast run builds, like the reference (bench/randomx/datasets.ts measures the cache).
  const config = randomxConfig(tempDir('vigil-bench-'), [
    `threads = ${threads}`,
    'dataset_cache = 0',
  ]);
  let daemon = await startRxDaemon(bus.address, tempDir('vigil-bench-state-'), config);
  const client = await TestClient.connect(bus.address);
  const runs: Run[] = [];
  const note = (r: Run): void => {
    runs.push(r);
    console.error(
      `${r.who} ${r.mode} threads=${r.threads} nonces=${r.nonces} hps=${r.hps.toFixed(1)} init_s=${r.initSeconds.toFixed(2)}`,
    );
  };
  try {
    // Interleaved in alternating order, so drift in the machine's load hits both sides alike.
    for (let i = 0; i < reps; i++) {
      const pair = [
        async () => note(await runReference(reference, 'light', threads, lightNonces)),
        async () => note(await runVigil(client, 'vigil', 'light', threads, lightNonces, KEY)),
      ];
      if (i % 2) pair.reverse();
      for (const step of pair) await step();
    }
    const watched = async (mode: Run['mode'], nonces: number): Promise<void> => {
      const pids = { daemon: daemon.pid, bus: await busPid(client) };
      const [run, cost] = await withWatcher(bus.address, pids, () =>
        runVigil(client, 'vigil+watch', mode, threads, nonces, KEY),
      );
      note({ ...run, cost });
      const share = (cost.mainThread + cost.bus + cost.watcher) / (run.hashSeconds * threads);
      console.error(
        `  progress path CPU: daemon main thread ${cost.mainThread.toFixed(2)} s, dbus-daemon ` +
          `${cost.bus.toFixed(2)} s, vigilctl watch ${cost.watcher.toFixed(2)} s ` +
          `(${cost.watcherLines} lines) = ${(share * 100).toFixed(2)}% of ${threads} CPUs ` +
          `over ${run.hashSeconds.toFixed(1)} s`,
      );
    };
    await watched('light', lightNonces);
    if (!values['no-fast']) {
      for (let i = 0; i < fastReps; i++) {
        // A fresh daemon each time, so vigil builds its dataset from scratch like the reference.
        await daemon.stop();
        daemon = await startRxDaemon(bus.address, tempDir('vigil-bench-state-'), config);
        // vigil with nothing reserved, against the reference with and without 1200 pages.
        const steps = [
          async () => note(await runReference(reference, 'fast', threads, fastNonces)),
          async () => note(await runVigil(client, 'vigil', 'fast', threads, fastNonces, KEY)),
          async () => note(await runReference(reference, 'fast', threads, fastNonces, true)),
        ];
        if (i % 2) steps.reverse();
        for (const step of steps) await step();
      }
      // Same key: the dataset is reused, so this run measures hashing under a watcher only.
      await watched('fast', fastNonces);
    }
  } finally {
    client.close();
    await daemon.stop();
    await bus.stop();
  }

  const pick = (who: Run['who'], mode: Run['mode']): Run[] =>
    runs.filter((r) => r.who === who && r.mode === mode);
  const rows: string[] = [];
  rows.push(
    '| mode | threads | nonces | pairs | reference H/s (median) | vigil H/s (median) | H/s ratio (median of pairs) | reference init s | vigil init s | init ratio (median of pairs) | vigil H/s with watch | with watch / without | progress-path CPU with watch |',
  );
  rows.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const mode of ['light', 'fast'] as const) {
    const ref = pick('reference', mode);
    const vig = pick('vigil', mode);
    const watched = pick('vigil+watch', mode);
    if (ref.length === 0 || vig.length === 0) continue;
    const refHps = median(ref.map((r) => r.hps));
    const vigHps = median(vig.map((r) => r.hps));
    const refInit = median(ref.map((r) => r.initSeconds));
    const vigInit = median(vig.map((r) => r.initSeconds));
    const watchHps = watched.length ? median(watched.map((r) => r.hps)) : NaN;
    // Each pair ran back to back under the same load: the median of their ratios is the
    // figure least moved by other work on the machine.
    const pairs = vig.map((v, i) => [ref[i], v]).filter(([r]) => r !== undefined);
    const hpsRatio = median(pairs.map(([r, v]) => v.hps / r.hps));
    const initRatio = median(pairs.map(([r, v]) => v.initSeconds / r.initSeconds));
    rows.push(
      `| ${mode} | ${threads} | ${vig[0].nonces} | ${pairs.length} | ${refHps.toFixed(1)} | ${vigHps.toFixed(1)} | ` +
        `${(hpsRatio * 100).toFixed(1)}% | ${refInit.toFixed(2)} | ${vigInit.toFixed(2)} | ` +
        `${mode === 'fast' ? `${(initRatio * 100).toFixed(1)}%` : 'n/a'} | ` +
        `${watchHps.toFixed(1)} | ${((watchHps / vigHps) * 100).toFixed(1)}% | ${costShare(watched[0])} |`,
    );
  }
  const large = pick('reference+largepages', 'fast');
  const fastVigil = pick('vigil', 'fast');
  if (large.length > 0 && fastVigil.length > 0) {
    const ratios = fastVigil.map((v, i) => v.hps / (large[i]?.hps ?? NaN)).filter(Number.isFinite);
    rows.push('');
    rows.push(
      '| fast, 2 threads | rxref --largepages (1200 reserved) H/s | vigil, nothing reserved, H/s | vigil / rxref --largepages (median of triples) | rxref --largepages init s | vigil init s |',
    );
    rows.push('|---|---|---|---|---|---|');
    rows.push(
      `| ${large.length} triples | ${median(large.map((r) => r.hps)).toFixed(1)} | ` +
        `${median(fastVigil.map((r) => r.hps)).toFixed(1)} | ${(median(ratios) * 100).toFixed(1)}% | ` +
        `${median(large.map((r) => r.initSeconds)).toFixed(2)} | ${median(fastVigil.map((r) => r.initSeconds)).toFixed(2)} |`,
    );
  }
  report('randomx.json', runs, rows);
}

runBench(main);
