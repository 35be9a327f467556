/**
 * Fast mode, vigil with nothing reserved against the reference (rxref.c) without pages and
 * with 1200 reserved (`--largepages`, issue 9's yardstick), in one process for vigil (the
 * engine, no bus: the bus does not touch the hashing threads) and interleaved, the order
 * rotating each round.
 *
 * On a shared machine wall-clock H/s moves with other load, so each run is also counted in
 * hashes per CPU-second of its hashing threads (utime + stime from /proc/PID/task/TID/stat):
 * a thread that waits for a core uses no CPU meanwhile, so that figure moves less (it still
 * moves with what shares the core's caches and memory bandwidth).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/randomx/per-cpu.js [--rounds N]
 *     [--nonces N] [--threads T] [--reference PATH/rxref.c] [--no-plain]
 *
 * --no-plain leaves out rxref without pages: more rounds of the bar's pair in the same time.
 *
 * Prints Markdown tables for BENCHMARKS.md and writes bench/out/randomx-per-cpu.json.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RandomXEngine } from '../../src/randomx/engine';
import {
  busiestThreads,
  buildReference,
  median,
  report,
  runBench,
  runRxref,
  rxrefField,
  threadCpu,
  withReservedPages,
  engineHooks,
} from './common';

const ROOT = path.resolve(__dirname, '../../..');
const KEY = Buffer.from('test key 000');

type Who = 'vigil' | 'rxref' | 'rxref-largepages';
const ALL: Who[] = ['vigil', 'rxref', 'rxref-largepages'];

interface Run {
  who: Who;
  round: number;
  hps: number;
  /** Hashes per CPU-second of the hashing threads. */
  hpcs: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '4' },
      nonces: { type: 'string', default: '6000' },
      threads: { type: 'string', default: '2' },
      reference: { type: 'string', default: path.resolve(ROOT, '../shared/reference/rxref.c') },
      'no-plain': { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds);
  const WHO = values['no-plain'] ? ALL.filter((w) => w !== 'rxref') : ALL;
  const nonces = Number(values.nonces);
  const threads = Number(values.threads);
  const binary = buildReference(values.reference);
  const engine = new RandomXEngine({ threads });
  const runs: Run[] = [];
  const note = (r: Run): void => {
    runs.push(r);
    console.error(`${r.who} round=${r.round} hps=${r.hps.toFixed(1)} hpcs=${r.hpcs.toFixed(1)}`);
  };
  const vigil = async (round: number): Promise<void> => {
    const before = threadCpu(process.pid);
    const r = await engine.benchmark({ nonces, mode: 'fast', threads, key: KEY }, engineHooks());
    const cpu = busiestThreads(before, threadCpu(process.pid), threads);
    // The dataset was built before the rounds: a measured run only hashes.
    if (r.initSeconds > 1) throw new Error('the dataset was built again');
    note({ who: 'vigil', round, hps: r.hashRate, hpcs: r.nonces / cpu });
  };
  const reference = async (largePages: boolean, round: number): Promise<void> => {
    const args = ['--full', '--threads', String(threads), '--nonces', String(nonces)];
    if (largePages) args.unshift('--largepages');
    const run = (): ReturnType<typeof runRxref> => runRxref(binary, args, threads);
    const { output, hashingCpuSeconds } = largePages ? await withReservedPages(run) : await run();
    note({
      who: largePages ? 'rxref-largepages' : 'rxref',
      round,
      hps: rxrefField(output, 'hps'),
      hpcs: nonces / hashingCpuSeconds,
    });
  };
  try {
    // The dataset first (with the reference's key), so the measured runs only hash.
    await engine.benchmark({ nonces: 100, mode: 'fast', threads, key: KEY }, engineHooks());
    for (let round = 0; round < rounds; round++) {
      const order = WHO.map((_, i) => WHO[(i + round) % WHO.length]);
      for (const who of order) {
        if (who === 'rxref' || who === 'rxref-largepages') {
          await reference(who === 'rxref-largepages', round);
        } else {
          await vigil(round);
        }
      }
    }
  } finally {
    await engine.close();
  }
  // Per round, a ratio of two runs taken minutes apart at most; the median over rounds.
  const ratio = (a: Who, b: Who, field: 'hps' | 'hpcs'): string => {
    const xs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const x = runs.find((r) => r.who === a && r.round === round);
      const y = runs.find((r) => r.who === b && r.round === round);
      if (x && y) xs.push(x[field] / y[field]);
    }
    return xs.length ? `${(median(xs) * 100).toFixed(1)}%` : 'n/a';
  };
  const med = (who: Who, field: 'hps' | 'hpcs'): string =>
    median(runs.filter((r) => r.who === who).map((r) => r[field])).toFixed(1);
  const rows = [
    `| ${threads} threads, fast, ${nonces} nonces, ${rounds} rounds | H/s (median) | hashes per CPU-second (median) |`,
    '|---|---|---|',
    ...WHO.map((who) => `| ${who} | ${med(who, 'hps')} | ${med(who, 'hpcs')} |`),
    '',
    '| ratio (median of rounds) | by H/s | by hashes per CPU-second | bar |',
    '|---|---|---|---|',
    `| vigil / rxref --largepages | ${ratio('vigil', 'rxref-largepages', 'hps')} | ${ratio('vigil', 'rxref-largepages', 'hpcs')} | ≥ 95% |`,
    `| vigil / rxref, no pages | ${ratio('vigil', 'rxref', 'hps')} | ${ratio('vigil', 'rxref', 'hpcs')} | – |`,
    `| rxref --largepages / rxref | ${ratio('rxref-largepages', 'rxref', 'hps')} | ${ratio('rxref-largepages', 'rxref', 'hpcs')} | – |`,
  ];
  report('randomx-per-cpu.json', runs, rows);
}

runBench(main);
