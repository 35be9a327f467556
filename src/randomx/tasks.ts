/**
 * RandomX jobs as Task kinds: randomx-batch, randomx-search (resumable, live Input) and
 * randomx-benchmark. Params and checkpoints are JSON, so bytes travel as hex and 64-bit
 * difficulties as decimal strings.
 */
import { VigilError } from '../core/errors';
import { typed, type TypedDict } from '../core/typed';
import type { Json, TaskContext, TaskKind } from '../tasks/types';
import type {
  FoundNonce,
  JobOptions,
  RandomXEngine,
  SearchHooks,
  SearchJob,
  SearchResult,
  SearchSession,
  SearchState,
} from './engine';
import type { Fault, Mode } from './protocol';
import {
  checkBatch,
  checkBlob,
  checkDifficulty,
  checkKey,
  checkMode,
  checkNonces,
  checkRange,
  checkThreads,
  checkU32,
  toBytes,
} from './validate';

export const BATCH_KIND = 'randomx-batch';
export const SEARCH_KIND = 'randomx-search';
export const BENCHMARK_KIND = 'randomx-benchmark';

export interface JobParams {
  [key: string]: Json;
  mode: Mode;
  threads: number;
}

export interface BatchParams extends JobParams {
  key: string;
  inputs: string[];
}

export interface SearchJobParams {
  [key: string]: Json;
  key: string;
  blob: string;
  nonce_offset: number;
  difficulty: string;
}

export interface SearchParamsJson extends JobParams {
  key: string;
  blob: string;
  nonce_offset: number;
  difficulty: string;
  start_nonce: number;
  count: number;
}

export interface BenchmarkParams extends JobParams {
  nonces: number;
  /** Hex; absent means a fresh random key, so the measured init is a real build. */
  key: string | null;
}

const hex = (b: Buffer): string => b.toString('hex');

function bytesFromHex(value: Json | undefined, what: string): Buffer {
  if (typeof value !== 'string' || !/^(?:[0-9a-f]{2})*$/i.test(value)) {
    throw new VigilError('InvalidArgument', `${what} must be hex bytes`);
  }
  return Buffer.from(value, 'hex');
}

/** Test hook: params may carry a fault for the workers; only tests submit such params. */
function faultOf(params: { [key: string]: Json }): Fault | undefined {
  const fault = params.fault;
  return fault === 'throw' || fault === 'exit' ? fault : undefined;
}

function jobOptions(params: JobParams): JobOptions {
  return {
    mode: checkMode(params.mode),
    threads: checkThreads(params.threads),
    fault: faultOf(params),
  };
}

function jobFromJson(job: SearchJobParams): SearchJob {
  const key = checkKey(bytesFromHex(job.key, 'key'));
  const blob = bytesFromHex(job.blob, 'blob');
  const nonceOffset = checkU32(job.nonce_offset, 'nonce_offset');
  checkBlob(blob, nonceOffset);
  return { key, blob, nonceOffset, difficulty: checkDifficulty(job.difficulty) };
}

function jobToJson(job: SearchJob): SearchJobParams {
  return {
    key: hex(job.key),
    blob: hex(job.blob),
    nonce_offset: job.nonceOffset,
    difficulty: job.difficulty.toString(),
  };
}

function stateToJson(state: SearchState): Json {
  return {
    job: jobToJson(state.job),
    job_index: state.jobIndex,
    next_nonce: state.nextNonce,
    found: state.found.map((f) => [f.nonce, hex(f.hash)]),
    superseded: state.superseded.map((f) => [f.job, f.nonce, hex(f.hash)]),
    hashes: state.hashes,
  };
}

function stateFromJson(json: Json | undefined): SearchState | undefined {
  if (json === null || json === undefined || typeof json !== 'object' || Array.isArray(json)) {
    return undefined;
  }
  const found = (json.found as Array<[number, string]>).map(([nonce, h]): FoundNonce => ({
    nonce,
    hash: Buffer.from(h, 'hex'),
  }));
  const superseded = (json.superseded as Array<[number, number, string]>).map(
    ([job, nonce, h]) => ({ job, nonce, hash: Buffer.from(h, 'hex') }),
  );
  return {
    job: jobFromJson(json.job as SearchJobParams),
    jobIndex: json.job_index as number,
    nextNonce: json.next_nonce as number,
    found,
    superseded,
    hashes: json.hashes as number,
  };
}

function searchResult(result: SearchResult): TypedDict {
  return {
    found: typed.of(
      'a(uay)',
      result.found.map((f) => [f.nonce, f.hash]),
    ),
    superseded: typed.of(
      'a(uuay)',
      result.superseded.map((f) => [f.job, f.nonce, f.hash]),
    ),
    job: typed.u(result.jobIndex),
    truncated: typed.b(result.truncated),
    next_nonce: typed.t(result.nextNonce),
    hashes: typed.t(result.hashes),
    hashrate: typed.d(result.hashRate),
    mode: typed.s(result.mode),
    threads: typed.u(result.threads),
  };
}

/**
 * A new job for a running search, from Task.Input's `a{sv}` (already unwrapped). Fields left
 * out keep their current value, so a miner can send only the new blob.
 */
export function parseSearchInput(
  data: Record<string, unknown>,
  current: SearchJob | undefined,
): SearchJob {
  const known = ['blob', 'key', 'nonce_offset', 'difficulty'];
  const names = Object.keys(data);
  if (names.length === 0) throw new VigilError('InvalidArgument', 'input holds no job field');
  for (const name of names) {
    if (!known.includes(name)) {
      throw new VigilError(
        'InvalidArgument',
        `unknown input field ${JSON.stringify(name)}; known: ${known.join(', ')}`,
      );
    }
  }
  if (!current) {
    const missing = known.filter((name) => data[name] === undefined);
    if (missing.length > 0) {
      throw new VigilError(
        'InvalidArgument',
        `the search has not started yet, so input needs every field; missing: ${missing.join(', ')}`,
      );
    }
  }
  const key = data.key === undefined ? current?.key : checkKey(toBytes(data.key, 'key'));
  const blob = data.blob === undefined ? current?.blob : toBytes(data.blob, 'blob');
  const nonceOffset =
    data.nonce_offset === undefined
      ? current?.nonceOffset
      : checkU32(data.nonce_offset, 'nonce_offset');
  const difficulty =
    data.difficulty === undefined ? current?.difficulty : checkDifficulty(data.difficulty);
  if (!key || !blob || nonceOffset === undefined || difficulty === undefined) {
    throw new VigilError('InvalidArgument', 'input lacks a job field');
  }
  checkBlob(blob, nonceOffset);
  return { key: Buffer.from(key), blob: Buffer.from(blob), nonceOffset, difficulty };
}

export function batchKind(engine: RandomXEngine): TaskKind<BatchParams> {
  const decode = (params: BatchParams): { key: Buffer; inputs: Buffer[] } => {
    if (!Array.isArray(params.inputs)) {
      throw new VigilError('InvalidArgument', 'inputs must be a list');
    }
    const inputs = params.inputs.map((input, i) => bytesFromHex(input, `input ${i}`));
    checkBatch(inputs);
    return { key: checkKey(bytesFromHex(params.key, 'key')), inputs };
  };
  return {
    name: BATCH_KIND,
    unit: 'hashes',
    cancelable: true,
    validate: (params) => {
      decode(params);
      jobOptions(params);
    },
    run: async (ctx, params) => {
      const { key, inputs } = decode(params);
      const result = await engine.hashBatch(key, inputs, jobOptions(params), ctx);
      return {
        hashes: typed.aay(result.hashes),
        mode: typed.s(result.mode),
        threads: typed.u(result.threads),
        hashrate: typed.d(result.hashRate),
      };
    },
  };
}

export function searchKind(engine: RandomXEngine): TaskKind<SearchParamsJson> {
  const sessions = new Map<string, SearchSession>();
  /** Input that arrived while the task was still queued, applied when it starts. */
  const early = new Map<string, SearchJob>();
  const decode = (params: SearchParamsJson) => {
    const job = jobFromJson(params);
    const startNonce = checkU32(params.start_nonce, 'start_nonce');
    const count = checkRange(startNonce, params.count);
    return { ...job, ...jobOptions(params), startNonce, count };
  };
  return {
    name: SEARCH_KIND,
    unit: 'hashes',
    cancelable: true,
    resumable: true,
    validate: (params) => {
      decode(params);
    },
    input: (ctx: TaskContext, data) => {
      const session = sessions.get(ctx.id);
      if (session) {
        session.input(parseSearchInput(data, session.job));
        return;
      }
      early.set(ctx.id, parseSearchInput(data, early.get(ctx.id) ?? restoredJob(ctx)));
    },
    run: async (ctx, params) => {
      const restored = stateFromJson(ctx.restoredCheckpoint);
      const session = engine.search(decode(params), searchHooks(ctx), restored);
      sessions.set(ctx.id, session);
      const pending = early.get(ctx.id);
      early.delete(ctx.id);
      if (pending) session.input(pending);
      try {
        return searchResult(await session.run());
      } finally {
        sessions.delete(ctx.id);
      }
    },
  };

  function restoredJob(ctx: TaskContext): SearchJob | undefined {
    return stateFromJson(ctx.restoredCheckpoint)?.job;
  }
}

export function benchmarkKind(engine: RandomXEngine): TaskKind<BenchmarkParams> {
  const decode = (params: BenchmarkParams) => ({
    nonces: checkNonces(params.nonces),
    key: params.key === null ? undefined : checkKey(bytesFromHex(params.key, 'key')),
    ...jobOptions(params),
  });
  return {
    name: BENCHMARK_KIND,
    unit: 'hashes',
    cancelable: true,
    validate: (params) => {
      decode(params);
    },
    run: async (ctx, params) => {
      const { nonces, ...options } = decode(params);
      const result = await engine.benchmark(nonces, options, ctx);
      return {
        hashrate: typed.d(result.hashRate),
        init_seconds: typed.d(result.initSeconds),
        cache_seconds: typed.d(result.cacheSeconds),
        dataset_seconds: typed.d(result.datasetSeconds),
        hash_seconds: typed.d(result.hashSeconds),
        mode: typed.s(result.mode),
        threads: typed.u(result.threads),
        nonces: typed.u(result.nonces),
      };
    },
  };
}

/** The task seen by the search loop: the context, with checkpoints turned into JSON. */
function searchHooks(ctx: TaskContext): SearchHooks {
  return {
    signal: ctx.signal,
    get paused() {
      return ctx.paused;
    },
    onPauseChange: (listener) => ctx.onPauseChange(listener),
    progress: (done, total) => ctx.progress(done, total),
    setPhase: (phase, total, share) => ctx.setPhase(phase, total, share),
    checkpoint: (state) => ctx.checkpoint(stateToJson(state)),
  };
}

export function randomxKinds(engine: RandomXEngine): TaskKind[] {
  return [batchKind(engine), searchKind(engine), benchmarkKind(engine)] as unknown as TaskKind[];
}
