/**
 * The one validation step: D-Bus values (and stored JSON) in, typed params out. The handlers
 * call these; the kinds and the engine trust what comes out. The task layer keeps params as
 * JSON (the history, and a resumable search after a restart), so bytes are hex there.
 */
import { VigilError } from '../core/errors';
import type { Json } from '../tasks/types';
import type { Mode } from './protocol';
import type {
  BatchParams,
  BenchmarkParams,
  FoundNonce,
  JobOptions,
  SearchInput,
  SearchJob,
  SearchParams,
  SearchState,
} from './types';
import {
  checkBatch,
  checkBlob,
  checkDifficulty,
  checkInput,
  checkKey,
  checkMode,
  checkNonces,
  checkOptionNames,
  checkRange,
  checkThreads,
  checkU32,
  toBytes,
} from './validate';

/** What a job gets when its options leave mode or threads out: the engine's properties. */
export interface JobDefaults {
  readonly defaultMode: Mode;
  readonly threads: number;
}

const invalid = (message: string): VigilError => new VigilError('InvalidArgument', message);

function jobOptions(options: Record<string, unknown>, defaults: JobDefaults): JobOptions {
  return {
    mode: options.mode === undefined ? defaults.defaultMode : checkMode(options.mode),
    threads: options.threads === undefined ? defaults.threads : checkThreads(options.threads),
  };
}

/** `Hash(ay key, ay input)`. */
export function hashArgs(key: unknown, input: unknown): { key: Buffer; input: Buffer } {
  return { key: checkKey(toBytes(key, 'key')), input: checkInput(toBytes(input, 'input')) };
}

/** `HashBatch(ay key, aay inputs, a{sv} options)`, options already unwrapped. */
export function batchArgs(
  key: unknown,
  inputs: unknown,
  options: Record<string, unknown>,
  defaults: JobDefaults,
): BatchParams {
  checkOptionNames(options, ['mode', 'threads']);
  if (!Array.isArray(inputs)) throw invalid('inputs must be a list');
  const list = inputs.map((input: unknown, i) => toBytes(input, `input ${i}`));
  checkBatch(list);
  return { key: checkKey(toBytes(key, 'key')), inputs: list, ...jobOptions(options, defaults) };
}

/** `Search(ay key, ay blob, u nonce_offset, t difficulty, a{sv} options)`. */
export function searchArgs(
  key: unknown,
  blob: unknown,
  nonceOffset: unknown,
  difficulty: unknown,
  options: Record<string, unknown>,
  defaults: JobDefaults,
): SearchParams {
  checkOptionNames(options, ['start_nonce', 'count', 'mode', 'threads', 'next_key']);
  const job = searchJob(key, blob, nonceOffset, difficulty);
  const startNonce =
    options.start_nonce === undefined ? 0 : checkU32(options.start_nonce, 'start_nonce');
  const count = checkRange(
    startNonce,
    options.count === undefined ? undefined : Number(options.count as number | bigint),
  );
  const nextKey = optionalKey(options.next_key, 'next_key');
  return {
    ...job,
    startNonce,
    count,
    ...jobOptions(options, defaults),
    ...(nextKey ? { nextKey } : {}),
  };
}

/** A key option: absent, empty (no key) or 1-256 bytes. */
function optionalKey(value: unknown, what: string): Buffer | undefined {
  if (value === undefined) return undefined;
  const bytes = toBytes(value, what);
  return bytes.length === 0 ? undefined : Buffer.from(checkKey(bytes));
}

/** `Benchmark(u nonces, a{sv} options)`. */
export function benchmarkArgs(
  nonces: unknown,
  options: Record<string, unknown>,
  defaults: JobDefaults,
): BenchmarkParams {
  checkOptionNames(options, ['mode', 'threads', 'key', 'next_key']);
  const nextKey = optionalKey(options.next_key, 'next_key');
  const params: BenchmarkParams = {
    nonces: checkNonces(nonces),
    ...(options.key === undefined ? {} : { key: checkKey(toBytes(options.key, 'key')) }),
    ...jobOptions(options, defaults),
    ...(nextKey ? { nextKey } : {}),
  };
  if (nextKey && params.mode !== 'fast') throw invalid('next_key needs fast mode');
  return params;
}

function searchJob(key: unknown, blob: unknown, nonceOffset: unknown, difficulty: unknown) {
  const job: SearchJob = {
    key: checkKey(toBytes(key, 'key')),
    blob: toBytes(blob, 'blob'),
    nonceOffset: checkU32(nonceOffset, 'nonce_offset'),
    difficulty: checkDifficulty(difficulty),
  };
  checkBlob(job.blob, job.nonceOffset);
  return job;
}

const JOB_FIELDS = ['blob', 'key', 'nonce_offset', 'difficulty'] as const;
const INPUT_FIELDS = [...JOB_FIELDS, 'next_key'];

/**
 * What Task.Input's `a{sv}` (already unwrapped) gives a search: a new job, whose fields left
 * out keep their current value (so a miner can send only the new blob), and a next key.
 */
export function searchInput(
  data: Record<string, unknown>,
  current: SearchJob | undefined,
): SearchInput {
  const names = Object.keys(data);
  if (names.length === 0) throw invalid('input holds no job field');
  for (const name of names) {
    if (!INPUT_FIELDS.includes(name)) {
      throw invalid(
        `unknown input field ${JSON.stringify(name)}; known: ${INPUT_FIELDS.join(', ')}`,
      );
    }
  }
  const input: SearchInput = {};
  if (data.next_key !== undefined) input.nextKey = optionalKey(data.next_key, 'next_key') ?? null;
  if (!JOB_FIELDS.some((name) => data[name] !== undefined)) return input;
  if (!current) {
    const missing = JOB_FIELDS.filter((name) => data[name] === undefined);
    if (missing.length > 0) {
      throw invalid(
        `the search has not started yet, so input needs every field; missing: ${missing.join(', ')}`,
      );
    }
  }
  const pick = (name: (typeof JOB_FIELDS)[number], now: unknown): unknown =>
    data[name] === undefined ? now : data[name];
  const job = searchJob(
    pick('key', current?.key),
    pick('blob', current?.blob),
    pick('nonce_offset', current?.nonceOffset),
    pick('difficulty', current?.difficulty),
  );
  // Copies: the caller's buffers may be reused by the bus library.
  input.job = { ...job, key: Buffer.from(job.key), blob: Buffer.from(job.blob) };
  return input;
}

// --- JSON, for the task layer -------------------------------------------------------------

const hex = (b: Buffer): string => b.toString('hex');

function fromHex(value: Json | undefined, what: string): Buffer {
  if (typeof value !== 'string' || !/^(?:[0-9a-f]{2})*$/i.test(value)) {
    throw invalid(`${what} must be hex bytes`);
  }
  return Buffer.from(value, 'hex');
}

function object(value: Json | undefined, what: string): { [key: string]: Json } {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`${what} must be an object`);
  }
  return value;
}

export interface BenchmarkParamsJson {
  [key: string]: Json;
  nonces: number;
  key: string | null;
  next_key: string | null;
  mode: Mode;
  threads: number;
}

export interface SearchJobJson {
  [key: string]: Json;
  key: string;
  blob: string;
  nonce_offset: number;
  difficulty: string;
}

export interface SearchParamsJson extends SearchJobJson {
  start_nonce: number;
  count: number;
  mode: Mode;
  threads: number;
  next_key: string | null;
}

/*
 * Benchmark params only ever come back from the task they were given to (the kind is not
 * resumed after a restart), so decoding them trusts them. Batch params are not turned into
 * JSON at all: the kind keeps the Buffers.
 */
export const benchmarkToJson = (p: BenchmarkParams): BenchmarkParamsJson => ({
  nonces: p.nonces,
  key: p.key ? hex(p.key) : null,
  next_key: p.nextKey ? hex(p.nextKey) : null,
  mode: p.mode,
  threads: p.threads,
});

export const benchmarkFromJson = (j: BenchmarkParamsJson): BenchmarkParams => ({
  nonces: j.nonces,
  ...(j.key === null ? {} : { key: Buffer.from(j.key, 'hex') }),
  ...(j.next_key === null ? {} : { nextKey: Buffer.from(j.next_key, 'hex') }),
  mode: j.mode,
  threads: j.threads,
});

function jobToJson(job: SearchJob): SearchJobJson {
  return {
    key: hex(job.key),
    blob: hex(job.blob),
    nonce_offset: job.nonceOffset,
    difficulty: job.difficulty.toString(),
  };
}

/** A stored job, checked again: it may come from the database after a restart. */
function jobFromJson(value: Json | undefined): SearchJob {
  const j = object(value, 'job');
  return searchJob(fromHex(j.key, 'key'), fromHex(j.blob, 'blob'), j.nonce_offset, j.difficulty);
}

export function searchToJson(p: SearchParams): SearchParamsJson {
  return {
    ...jobToJson(p),
    start_nonce: p.startNonce,
    count: p.count,
    mode: p.mode,
    threads: p.threads,
    next_key: p.nextKey ? hex(p.nextKey) : null,
  };
}

/** Params of a search this daemon just submitted: trusted, they were checked on the way in. */
export function searchFromJson(j: SearchParamsJson): SearchParams {
  return {
    key: Buffer.from(j.key, 'hex'),
    blob: Buffer.from(j.blob, 'hex'),
    nonceOffset: j.nonce_offset,
    difficulty: BigInt(j.difficulty),
    startNonce: j.start_nonce,
    count: j.count,
    mode: j.mode,
    threads: j.threads,
    ...(j.next_key ? { nextKey: Buffer.from(j.next_key, 'hex') } : {}),
  };
}

/**
 * Params of a search resumed after a restart, read back from the database: they go through
 * the same checks as a call.
 */
export function storedSearch(value: Json): SearchParams {
  const j = object(value, 'search params');
  return searchArgs(
    fromHex(j.key, 'key'),
    fromHex(j.blob, 'blob'),
    j.nonce_offset,
    j.difficulty,
    {
      start_nonce: j.start_nonce,
      count: j.count,
      mode: j.mode,
      threads: j.threads,
      ...(typeof j.next_key === 'string' ? { next_key: fromHex(j.next_key, 'next_key') } : {}),
    },
    { defaultMode: 'light', threads: 1 },
  );
}

export function stateToJson(state: SearchState): Json {
  return {
    job: jobToJson(state.job),
    job_index: state.jobIndex,
    next_nonce: state.nextNonce,
    found: state.found.map((f) => [f.nonce, hex(f.hash)]),
    superseded: state.superseded.map((f) => [f.job, f.nonce, hex(f.hash)]),
    hashes: state.hashes,
    next_key: state.nextKey ? hex(state.nextKey) : null,
  };
}

/** A search checkpoint from the database; undefined when there is none. */
export function stateFromJson(value: Json | undefined): SearchState | undefined {
  if (value === null || value === undefined) return undefined;
  const j = object(value, 'checkpoint');
  const found = (j.found as Array<[number, string]>).map(([nonce, h]): FoundNonce => ({
    nonce,
    hash: fromHex(h, 'hash'),
  }));
  const superseded = (j.superseded as Array<[number, number, string]>).map(([job, nonce, h]) => ({
    job,
    nonce,
    hash: fromHex(h, 'hash'),
  }));
  return {
    job: jobFromJson(j.job),
    jobIndex: j.job_index as number,
    nextNonce: j.next_nonce as number,
    found,
    superseded,
    hashes: j.hashes as number,
    ...(typeof j.next_key === 'string'
      ? { nextKey: Buffer.from(checkKey(fromHex(j.next_key, 'next_key'))) }
      : {}),
  };
}
