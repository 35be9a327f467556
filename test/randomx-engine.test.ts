/**
 * The RandomX engine without a bus, in light mode: real worker threads on real librandomx.
 * Every search answer is checked against hashes computed independently through HashBatch.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { VigilError } from '../src/core/errors';
import {
  RandomXEngine,
  type SearchParams,
  type SearchResult,
  type SearchState,
} from '../src/randomx/engine';
import { openStateDatabase } from '../src/core/database';
import { searchKind } from '../src/randomx/kinds';
import { freeHugePageBytes } from '../src/randomx/memory';
import { CACHE_BYTES } from '../src/randomx/native';
import { batchArgs, hashArgs, searchArgs, searchToJson } from '../src/randomx/params';
import { LIMITS, meetsDifficulty } from '../src/randomx/validate';
import { TaskHistory } from '../src/tasks/history';
import { TaskManager } from '../src/tasks/manager';
import { tempStateDir } from './helpers/daemon';
import { EXIT_MARKER, FAULTY_WORKER, THROW_MARKER, faultBlob } from './randomx/faulty-worker';
import { TestJob, VECTORS, cpuSecondsDuring, sleep, withNonce } from './randomx/harness';

const KEY = Buffer.from('vigil engine test key');
const BLOB = Buffer.from(
  '0707f7a4f0d605b303260816ba3f10902e1a145ac5fad3aa3af6ea44c11869dc4f853f002b2eea0000000077b206a02ca5b1d4ce6bbfdf0acac38bded34d2dcdeef95cd20cefc12f61d56109',
  'hex',
);
const OFFSET = 39;
const DIFFICULTY = 4n;
/** Nonces 0..ORACLE-1 of BLOB, hashed once through HashBatch: the independent answer key. */
const ORACLE = 120;
/** The engine's cap on answers kept by one search (LIMITS.maxFound in the daemon). */
const MAX_FOUND = 60;

let engine: RandomXEngine;
let oracle: Buffer[];

function accepted(from: number, to: number, difficulty = DIFFICULTY): number[] {
  const out: number[] = [];
  for (let n = from; n < to; n++) if (meetsDifficulty(oracle[n], difficulty)) out.push(n);
  return out;
}

function params(over: Partial<SearchParams> = {}): SearchParams {
  return {
    key: KEY,
    blob: BLOB,
    nonceOffset: OFFSET,
    difficulty: DIFFICULTY,
    startNonce: 0,
    count: ORACLE,
    mode: 'light',
    threads: 2,
    ...over,
  };
}

async function rejection(p: Promise<unknown>): Promise<VigilError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(VigilError);
    return e as VigilError;
  }
  throw new Error('expected a rejection');
}

function expectFoundMatchesOracle(result: SearchResult | SearchState, from: number, to: number) {
  expect(result.found.map((f) => f.nonce)).toEqual(accepted(from, to));
  for (const f of result.found) expect(f.hash.equals(oracle[f.nonce])).toBe(true);
}

beforeAll(async () => {
  engine = new RandomXEngine({
    threads: 2,
    checkpointIntervalMs: 300,
    maxFound: MAX_FOUND,
    workerFile: FAULTY_WORKER,
  });
  const inputs = Array.from({ length: ORACLE }, (_, n) => withNonce(BLOB, OFFSET, n));
  oracle = (await engine.hashBatch(KEY, inputs, { mode: 'light', threads: 2 }, new TestJob()))
    .hashes;
}, 120000);

afterAll(async () => {
  await engine?.close();
});

describe('hashing', () => {
  it('gives the official vectors through Hash', async () => {
    for (const [key, input, hash] of VECTORS) {
      const out = await engine.hash(Buffer.from(key), Buffer.from(input));
      expect(out.toString('hex')).toBe(hash);
    }
  });

  it('gives the official vectors through HashBatch, in input order', async () => {
    const job = new TestJob();
    const result = await engine.hashBatch(
      Buffer.from(VECTORS[0][0]),
      VECTORS.map(([, input]) => Buffer.from(input)),
      { mode: 'light', threads: 2 },
      job,
    );
    expect(result.hashes.map((h) => h.toString('hex'))).toEqual(VECTORS.map(([, , h]) => h));
    expect(job.phases).toEqual([['hashing', 3]]);
    expect(job.done).toBe(3);
  });

  it('agrees between HashBatch and Hash on random inputs, the empty one included', async () => {
    const key = randomBytes(32);
    const inputs = [Buffer.alloc(0), ...Array.from({ length: 5 }, (_, i) => randomBytes(i * 37))];
    const batch = await engine.hashBatch(key, inputs, { mode: 'light', threads: 2 }, new TestJob());
    for (let i = 0; i < inputs.length; i++) {
      expect(batch.hashes[i].equals(await engine.hash(key, inputs[i]))).toBe(true);
    }
  });

  it('refuses bad input with named errors at the edge, before any native call', () => {
    const codeOf = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(VigilError);
        return (e as VigilError).code;
      }
      throw new Error('expected a refusal');
    };
    const big = Buffer.alloc(LIMITS.maxInputBytes + 1);
    const defaults = { defaultMode: 'light' as const, threads: 2 };
    const batch =
      (inputs: unknown, options: Record<string, unknown> = {}) =>
      () =>
        batchArgs(KEY, inputs, options, defaults);
    expect(codeOf(() => hashArgs(Buffer.alloc(0), Buffer.from('x')))).toBe('InvalidArgument');
    expect(codeOf(() => hashArgs(Buffer.alloc(LIMITS.maxKeyBytes + 1), big))).toBe('LimitExceeded');
    expect(codeOf(() => hashArgs(KEY, big))).toBe('LimitExceeded');
    expect(codeOf(() => hashArgs(KEY, 'not bytes'))).toBe('InvalidArgument');
    expect(codeOf(batch([]))).toBe('InvalidArgument');
    expect(codeOf(batch('not a list'))).toBe('InvalidArgument');
    const many = Array.from({ length: LIMITS.maxBatchInputs + 1 }, () => Buffer.alloc(0));
    expect(codeOf(batch(many))).toBe('LimitExceeded');
    const heavy = Array.from({ length: 65 }, () => Buffer.alloc(LIMITS.maxInputBytes));
    expect(codeOf(batch(heavy))).toBe('LimitExceeded');
    expect(codeOf(batch([BLOB], { mode: 'turbo' }))).toBe('InvalidArgument');
    expect(codeOf(batch([BLOB], { threads: 0 }))).toBe('InvalidArgument');
    // What passes comes out typed, with the engine's defaults filled in.
    expect(batchArgs(KEY, [BLOB], {}, defaults)).toEqual({
      key: KEY,
      inputs: [BLOB],
      mode: 'light',
      threads: 2,
    });
  });
});

describe('search', () => {
  it('finds exactly the nonces of a range that meet the difficulty', async () => {
    const job = new TestJob();
    const result = await engine.search(params({ startNonce: 10, count: 50 }), job).run();
    expectFoundMatchesOracle(result, 10, 60);
    expect(result.found.length).toBeGreaterThan(0);
    expect(result.nextNonce).toBe(60);
    expect(result.hashes).toBe(50);
    expect(job.phases).toEqual([['hashing', 50]]);
    expect(job.done).toBe(50);
    // Re-hash each answer on its own and check it against the difficulty rule.
    for (const f of result.found) {
      const again = await engine.hash(KEY, withNonce(BLOB, OFFSET, f.nonce));
      expect(again.equals(f.hash)).toBe(true);
      expect(meetsDifficulty(again, DIFFICULTY)).toBe(true);
    }
  });

  it('accepts every nonce at difficulty 1 and none the oracle rejects at a high one', async () => {
    const easy = await engine.search(params({ difficulty: 1n, count: 6 }), new TestJob()).run();
    expect(easy.found.map((f) => f.nonce)).toEqual([0, 1, 2, 3, 4, 5]);
    const hard = 1n << 40n;
    const strict = await engine.search(params({ difficulty: hard, count: 8 }), new TestJob()).run();
    expect(strict.found.map((f) => f.nonce)).toEqual(accepted(0, 8, hard));
  });

  it('ends early, marked truncated, once it holds the most answers it may keep', async () => {
    const result = await engine
      .search(params({ difficulty: 1n, count: 1_000_000 }), new TestJob())
      .run();
    expect(result.truncated).toBe(true);
    expect(result.found.map((f) => f.nonce)).toEqual(
      Array.from({ length: MAX_FOUND }, (_, n) => n),
    );
    expect(result.nextNonce).toBe(MAX_FOUND);
    for (const f of result.found.slice(0, ORACLE))
      expect(f.hash.equals(oracle[f.nonce])).toBe(true);
  });

  it('stops every worker on cancel', async () => {
    const job = new TestJob();
    const running = engine.search(params({ count: 1_000_000 }), job).run();
    await job.reached(4);
    job.cancel();
    expect((await rejection(running)).code).toBe('Cancelled');
    // Nothing hashes any more: two busy workers would burn about a CPU second here.
    expect(await cpuSecondsDuring(() => sleep(500))).toBeLessThan(0.25);
  });

  it('frees the CPU while paused and resumes where it stopped', async () => {
    const job = new TestJob();
    const running = engine.search(params({ count: 60 }), job).run();
    await job.reached(6);
    job.pause();
    await sleep(200);
    const doneAtPause = job.done;
    expect(await cpuSecondsDuring(() => sleep(600))).toBeLessThan(0.25);
    expect(job.done).toBe(doneAtPause);
    job.resume();
    const result = await running;
    // Every nonce hashed exactly once across the pause.
    expect(result.hashes).toBe(60);
    expect(result.nextNonce).toBe(60);
    expectFoundMatchesOracle(result, 0, 60);
  });

  it('switches to a new job through input without losing the old job’s answers', async () => {
    const otherBlob = randomBytes(76);
    const job = new TestJob();
    const session = engine.search(params({ count: 40, difficulty: 2n }), job);
    const running = session.run();
    await job.reached(3);
    session.input({ job: { key: KEY, blob: otherBlob, nonceOffset: 5, difficulty: DIFFICULTY } });
    const result = await running;
    expect(result.jobIndex).toBe(1);
    expect(result.job.blob.equals(otherBlob)).toBe(true);
    expect(result.nextNonce).toBe(40);
    expect(job.phases.filter(([p]) => p === 'hashing').length).toBe(2);
    for (const f of result.found) {
      const again = await engine.hash(KEY, withNonce(otherBlob, 5, f.nonce));
      expect(again.equals(f.hash)).toBe(true);
      expect(meetsDifficulty(again, DIFFICULTY)).toBe(true);
    }
    const expected = [];
    const inputs = Array.from({ length: 40 }, (_, n) => withNonce(otherBlob, 5, n));
    const hashes = (
      await engine.hashBatch(KEY, inputs, { mode: 'light', threads: 2 }, new TestJob())
    ).hashes;
    for (let n = 0; n < 40; n++) if (meetsDifficulty(hashes[n], DIFFICULTY)) expected.push(n);
    expect(result.found.map((f) => f.nonce)).toEqual(expected);
    // Answers of the first job stay in the result, marked with their job.
    for (const f of result.superseded) {
      expect(f.job).toBe(0);
      expect(f.hash.equals(oracle[f.nonce])).toBe(true);
      expect(meetsDifficulty(f.hash, 2n)).toBe(true);
    }
  });

  it('resumes from a checkpoint and ends with the answers of the whole range', async () => {
    const job = new TestJob();
    const running = engine.search(params({ count: ORACLE }), job).run();
    const ended = running.then(
      () => true,
      () => true,
    );
    // Cancel as soon as some work is done (first progress report or checkpoint): the search
    // then writes its stopping checkpoint mid-range, however fast this machine hashes.
    while (
      job.done === 0 &&
      !job.checkpoints.some((c) => c.nextNonce > 0) &&
      !(await Promise.race([ended, sleep(20)]))
    ) {
      // wait for work past the start
    }
    job.cancel();
    await rejection(running);
    const checkpoint = job.checkpoints[job.checkpoints.length - 1];
    expect(checkpoint.nextNonce).toBeGreaterThan(0);
    expect(checkpoint.nextNonce).toBeLessThan(ORACLE);
    expectFoundMatchesOracle(checkpoint, 0, checkpoint.nextNonce);

    const resumedJob = new TestJob();
    const result = await engine.search(params({ count: ORACLE }), resumedJob, checkpoint).run();
    expectFoundMatchesOracle(result, 0, ORACLE);
    expect(result.nextNonce).toBe(ORACLE);
    // The resumed run hashed exactly the nonces from the checkpoint on.
    expect(result.hashes - checkpoint.hashes).toBe(ORACLE - checkpoint.nextNonce);
    expect(resumedJob.done).toBe(ORACLE);
  });
});

describe('the search task kind', () => {
  it('lets go of input given to a queued search once that search is cancelled', async () => {
    const kind = searchKind(engine);
    const manager = new TaskManager({
      maxRunning: 1,
      retentionMs: 60_000,
      maxQueuedPerUser: 10,
      history: new TaskHistory(openStateDatabase(tempStateDir())),
    });
    manager.registerKind(kind);
    const defaults = { defaultMode: 'light' as const, threads: 1 };
    const submit = () =>
      manager.submit(
        kind.name,
        searchToJson(searchArgs(KEY, BLOB, OFFSET, DIFFICULTY, {}, defaults)),
        { uid: 0, privileged: true },
      );
    const running = submit();
    const queued = submit();
    expect(queued.state).toBe('queued');
    queued.input({ blob: randomBytes(76), key: KEY, nonce_offset: 3, difficulty: 5n });
    expect(kind.waitingInputs).toBe(1);
    queued.cancel();
    expect(kind.waitingInputs).toBe(0);
    running.cancel();
    await expect(running.wait()).rejects.toThrow(/cancel/);
  });
});

describe('cache lifetime', () => {
  it('keeps a key’s cache while a job uses it and frees it once the key has changed', async () => {
    const a = Buffer.from('lifetime key a');
    const b = Buffer.from('lifetime key b');
    const resident = (): string[] =>
      engine
        .residentKeys()
        .map((r) => r.key)
        .sort();
    await engine.hash(a, BLOB);
    expect(resident()).toEqual([a.toString('hex')]);
    const job = new TestJob();
    const running = engine.search(params({ key: a, count: 1_000_000 }), job).run();
    await job.reached(2);
    // Another key arrives while the search still hashes with the first one: both live.
    await engine.hash(b, BLOB);
    expect(resident()).toEqual([a.toString('hex'), b.toString('hex')].sort());
    job.cancel();
    await rejection(running);
    // The search let go and the current key is b: a's cache is gone.
    expect(resident()).toEqual([b.toString('hex')]);
    expect(engine.residentKeys().every((r) => !r.dataset)).toBe(true);
  });
});

describe('worker failures', () => {
  it('fail only their own task, and the next task succeeds', async () => {
    const thrown = await rejection(
      engine.search(params({ blob: faultBlob(THROW_MARKER), count: 20 }), new TestJob()).run(),
    );
    expect(thrown.code).toBe('Failed');
    expect(thrown.message).toMatch(/injected worker fault/);

    // A concurrent job on the quick lane is not disturbed by a worker dying under another.
    const options = { mode: 'light' as const, threads: 2 };
    const [died, quick] = await Promise.allSettled([
      engine.hashBatch(KEY, [faultBlob(EXIT_MARKER), BLOB, BLOB], options, new TestJob()),
      engine.hash(Buffer.from(VECTORS[0][0]), Buffer.from(VECTORS[0][1])),
    ]);
    expect(died.status).toBe('rejected');
    expect(((died as PromiseRejectedResult).reason as VigilError).code).toBe('Failed');
    expect(quick.status === 'fulfilled' && quick.value.toString('hex')).toBe(VECTORS[0][2]);

    // The pool replaced the dead workers: a job on every hashing worker completes.
    const result = await engine.search(params({ startNonce: 0, count: 12 }), new TestJob()).run();
    expectFoundMatchesOracle(result, 0, 12);
    const batch = await engine.hashBatch(KEY, [BLOB, BLOB], options, new TestJob());
    expect(batch.hashes[0].equals(batch.hashes[1])).toBe(true);
  });
});

describe('large pages', () => {
  const knob = '/proc/sys/vm/nr_hugepages';
  let reserved: string;

  beforeAll(() => {
    reserved = fs.readFileSync(knob, 'utf8').trim();
    // Room for one 256 MiB cache (128 pages of 2 MiB) and the workers' scratchpads.
    fs.writeFileSync(knob, String(Number(reserved) + 140));
  });

  afterAll(async () => {
    // Let go of the cache that sits in huge pages, then give the pages back.
    await engine.hash(Buffer.from('large pages released'), BLOB);
    fs.writeFileSync(knob, reserved);
  });

  it('are used for a new cache when free, and the hashes stay the same', async () => {
    const free = freeHugePageBytes();
    const [key, input, expected] = VECTORS[2];
    expect((await engine.hash(Buffer.from(key), Buffer.from(input))).toString('hex')).toBe(
      expected,
    );
    if (free >= CACHE_BYTES) {
      expect(engine.properties().features).toContain('large-pages');
    } else {
      // The kernel could not reserve them (fragmented memory): skipped silently.
      expect(engine.properties().features).not.toContain('large-pages');
    }
  });
});

describe('fast-mode dataset', () => {
  it('is built anew for a job that comes while a cancelled build winds down', async () => {
    const key = Buffer.from('rebuild after cancel');
    const options = { mode: 'fast' as const, threads: 2 };
    const first = new TestJob();
    const cancelledRun = engine.hashBatch(key, [BLOB], options, first);
    while (!(first.phases.some(([p]) => p === 'dataset') && first.done > 0)) await sleep(5);
    first.cancel();
    expect((await rejection(cancelledRun)).code).toBe('Cancelled');

    // Same key at once: it must not inherit the cancellation of the build it found.
    const second = new TestJob();
    let outcome = 'running';
    const secondRun = engine.hashBatch(key, [BLOB], options, second);
    secondRun.then(
      () => (outcome = 'completed'),
      (e: unknown) => (outcome = `failed: ${(e as Error).message}`),
    );
    await Promise.race([second.reached(1), secondRun.catch(() => {})]);
    expect(outcome).toBe('running');
    second.cancel();
    expect((await rejection(secondRun)).code).toBe('Cancelled');
  }, 60000);
});

describe('close', () => {
  it('waits for the workers before freeing a dataset they are still building', () => {
    // In a child process: freeing the dataset under a worker is a segfault, not an exception.
    const script = `
      const { RandomXEngine } = require(${JSON.stringify(path.join(__dirname, '../src/randomx/engine'))});
      const { TestJob } = require(${JSON.stringify(path.join(__dirname, 'randomx/harness'))});
      (async () => {
        const engine = new RandomXEngine({ threads: 2 });
        const job = new TestJob();
        engine
          .hashBatch(Buffer.from('close race'), [Buffer.from('x')], { mode: 'fast', threads: 2 }, job)
          .catch(() => {});
        while (!(job.phases.some(([p]) => p === 'dataset') && job.done > 0)) {
          await new Promise((r) => setTimeout(r, 5));
        }
        if (process.argv[1] === 'cancel') job.cancel();
        await engine.close();
        await new Promise((r) => setTimeout(r, 500));
        process.stdout.write('closed');
      })();
    `;
    for (const how of ['close', 'cancel']) {
      const child = spawnSync(process.execPath, ['-e', script, how], {
        encoding: 'utf8',
        timeout: 50000,
      });
      expect({ how, signal: child.signal, status: child.status, out: child.stdout }).toEqual({
        how,
        signal: null,
        status: 0,
        out: 'closed',
      });
    }
  }, 60000);
});
