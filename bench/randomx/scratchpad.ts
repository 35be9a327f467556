/**
 * Is the scratchpad swap (src/randomx/library-memory.ts) worth keeping? Fast mode, nothing
 * reserved, in one process: an engine whose VMs get a scratchpad in a transparent huge page,
 * and an engine whose VMs keep librandomx's own; against the reference (rxref.c) without
 * pages and with 1200 reserved (`--largepages`, the yardstick). Interleaved, the
 * order rotating each round.
 *
 * On a shared machine wall-clock H/s moves with other load, so each run is also counted in
 * hashes per CPU-second of its hashing threads (utime + stime from /proc/PID/task/TID/stat):
 * a thread that waits for a core uses no CPU meanwhile, so that figure moves far less.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/randomx/scratchpad.js [--rounds N]
 *     [--nonces N] [--threads T] [--reference PATH/rxref.c]
 *
 * Prints a Markdown table for BENCHMARKS.md and writes bench/out/randomx-scratchpad.json.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { RandomXEngine } from '../../src/randomx/engine';
import type { JobHooks } from '../../src/randomx/types';
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
} from './common';

const ROOT = path.resolve(__dirname, '../../..');
const KEY = Buffer.from('test key 000');

type Who = 'vigil-swap' | 'vigil-library' | 'rxref' | 'rxref-largepages';
const WHO: Who[] = ['vigil-swap', 'vigil-library', 'rxref', 'rxref-largepages'];

interface Run {
  who: Who;
  round: number;
  hps: number;
  /** Hashes per CPU-second of the hashing threads. */
  hpcs: number;
}

function hooks(): JobHooks {
  return {
    signal: new AbortController().signal,
    paused: false,
    onPauseChange: () => () => {},
    progress: () => {},
    setPhase: () => {},
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '4' },
      nonces: { type: 'string', default: '6000' },
      threads: { type: 'string', default: '2' },
      reference: { type: 'string', default: path.resolve(ROOT, '../shared/reference/rxref.c') },
    },
  });
  const rounds = Number(values.rounds);
  const nonces = Number(values.nonces);
  const threads = Number(values.threads);
  const binary = buildReference(values.reference);
  const engines = {
    'vigil-swap': new RandomXEngine({ threads }),
    'vigil-library': new RandomXEngine({
      threads,
      workerFile: path.join(__dirname, 'library-scratchpad-worker.js'),
    }),
  };
  const runs: Run[] = [];
  const note = (r: Run): void => {
    runs.push(r);
    console.error(`${r.who} round=${r.round} hps=${r.hps.toFixed(1)} hpcs=${r.hpcs.toFixed(1)}`);
  };
  const vigil = async (who: 'vigil-swap' | 'vigil-library', round: number): Promise<void> => {
    const before = threadCpu(process.pid);
    const t0 = performance.now();
    const r = await engines[who].benchmark({ nonces, mode: 'fast', threads, key: KEY }, hooks());
    const cpu = busiestThreads(before, threadCpu(process.pid), threads);
    if (r.datasetSeconds > 0 && performance.now() - t0 < r.datasetSeconds * 1000) {
      throw new Error('the dataset was built during a measured run');
    }
    note({ who, round, hps: r.hashRate, hpcs: r.nonces / cpu });
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
    // Both datasets first (with the same key), so the measured runs only hash.
    for (const engine of Object.values(engines)) {
      await engine.benchmark({ nonces: 100, mode: 'fast', threads, key: KEY }, hooks());
    }
    for (let round = 0; round < rounds; round++) {
      const order = WHO.map((_, i) => WHO[(i + round) % WHO.length]);
      for (const who of order) {
        if (who === 'rxref' || who === 'rxref-largepages') {
          await reference(who === 'rxref-largepages', round);
        } else {
          await vigil(who, round);
        }
      }
    }
  } finally {
    await Promise.all(Object.values(engines).map((e) => e.close()));
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
    `| vigil (swap) / rxref --largepages | ${ratio('vigil-swap', 'rxref-largepages', 'hps')} | ${ratio('vigil-swap', 'rxref-largepages', 'hpcs')} | ≥ 95% |`,
    `| vigil (library scratchpad) / rxref --largepages | ${ratio('vigil-library', 'rxref-largepages', 'hps')} | ${ratio('vigil-library', 'rxref-largepages', 'hpcs')} | ≥ 95% |`,
    `| vigil (swap) / vigil (library scratchpad) | ${ratio('vigil-swap', 'vigil-library', 'hps')} | ${ratio('vigil-swap', 'vigil-library', 'hpcs')} | – |`,
    `| vigil (swap) / rxref, no pages | ${ratio('vigil-swap', 'rxref', 'hps')} | ${ratio('vigil-swap', 'rxref', 'hpcs')} | – |`,
    `| rxref --largepages / rxref | ${ratio('rxref-largepages', 'rxref', 'hps')} | ${ratio('rxref-largepages', 'rxref', 'hpcs')} | – |`,
  ];
  report('randomx-scratchpad.json', runs, rows);
}

runBench(main);
