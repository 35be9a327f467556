/**
 * What a background dataset write costs the hashing beside it, measured in one process on one
 * dataset: the engine hashes fast-mode windows on every thread back to back, and in alternate
 * rounds its writer worker (nice 19, the code the daemon runs after a build) writes the
 * dataset to a file meanwhile. A round with the write hashes until the write has ended; the
 * round after hashes as many windows with nothing written. Per pair of rounds, the ratio of
 * the mean rates; the median over pairs. Windows taken seconds apart see the same machine,
 * which a daemon restarted between runs (datasets.js) does not.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/randomx/write-cost.js [--pairs N]
 *     [--nonces N] [--threads T] [--dir DIR]
 *
 * DIR (default /var/tmp) should be on the filesystem the cache directory is on.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RandomXEngine } from '../../src/randomx/engine';
import { DATASET_ITEM_SIZE, native } from '../../src/randomx/native';
import type { SaveDatasetReply } from '../../src/randomx/protocol';
import { median, report, runBench, engineHooks } from './common';

const KEY = Buffer.from('test key 000');

interface Pair {
  during: number[];
  quiet: number[];
  ratio: number;
  writeSeconds: number;
  writeCpu: number;
  direct: boolean;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pairs: { type: 'string', default: '5' },
      nonces: { type: 'string', default: '3000' },
      threads: { type: 'string', default: '2' },
      dir: { type: 'string', default: '/var/tmp' },
    },
  });
  const pairs = Number(values.pairs);
  const nonces = Number(values.nonces);
  const threads = Number(values.threads);
  const dir = fs.mkdtempSync(path.join(values.dir, 'vigil-write-cost-'));
  const engine = new RandomXEngine({ threads });
  const window = async (): Promise<number> =>
    (await engine.benchmark({ nonces, mode: 'fast', threads, key: KEY }, engineHooks())).hashRate;
  const log: Pair[] = [];
  try {
    await engine.benchmark({ nonces: 100, mode: 'fast', threads, key: KEY }, engineHooks());
    const dataset = engine.resources.currentDataset?.dataset ?? 0;
    if (!dataset) throw new Error('no dataset');
    for (let i = 0; i < pairs; i++) {
      const file = path.join(dir, `dataset-${i}`);
      const t0 = performance.now();
      let done = false;
      const write = engine.writer
        .run<SaveDatasetReply>({
          op: 'saveDataset',
          dataset,
          itemBytes: native().datasetItemCount() * DATASET_ITEM_SIZE,
          keyHash: Buffer.alloc(32),
          tempPath: `${file}.tmp`,
          finalPath: file,
          control: new SharedArrayBuffer(4),
        })
        .finally(() => (done = true));
      const during: number[] = [];
      while (!done) during.push(await window());
      const reply = await write;
      const writeSeconds = (performance.now() - t0) / 1000;
      fs.rmSync(file, { force: true });
      const quiet: number[] = [];
      while (quiet.length < during.length) quiet.push(await window());
      const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
      const pair = {
        during,
        quiet,
        ratio: mean(during) / mean(quiet),
        writeSeconds,
        writeCpu: reply.cpuSeconds,
        direct: reply.direct,
      };
      log.push(pair);
      console.error(JSON.stringify(pair));
    }
  } finally {
    await engine.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const ratios = log.map((p) => p.ratio);
  const rows = [
    `| ${threads} threads, fast, windows of ${nonces} nonces, ${pairs} pairs | median | each pair |`,
    '|---|---|---|',
    `| H/s while the dataset is written / with nothing written | ${(median(ratios) * 100).toFixed(1)}% | ${ratios.map((r) => `${(r * 100).toFixed(1)}%`).join(', ')} |`,
    `| hash-rate cost of the write (bar ≤ 5 %) | ${((1 - median(ratios)) * 100).toFixed(1)}% | |`,
    `| the write: seconds, CPU seconds of its thread, direct I/O | ${median(log.map((p) => p.writeSeconds)).toFixed(1)}, ${median(log.map((p) => p.writeCpu)).toFixed(2)} | ${log.every((p) => p.direct) ? 'direct' : 'page cache'} |`,
  ];
  report('randomx-write-cost.json', log, rows);
}

runBench(main);
