/**
 * RandomX jobs as Task kinds: randomx-batch, randomx-search (resumable, live Input) and
 * randomx-benchmark. Their params were checked by the D-Bus handlers (params.ts); a kind
 * turns them back into typed params and runs the engine.
 */
import { typed, type TypedDict } from '../core/typed';
import type { TaskContext, TaskKind } from '../tasks/types';
import type { RandomXEngine } from './engine';
import {
  benchmarkFromJson,
  searchFromJson,
  searchInput,
  stateFromJson,
  stateToJson,
  storedSearch,
  type BenchmarkParamsJson,
  type SearchParamsJson,
} from './params';
import type { SearchSession } from './search-job';
import type {
  BatchParams,
  DatasetSource,
  SearchHooks,
  SearchInput,
  SearchJob,
  SearchResult,
} from './types';

export const BATCH_KIND = 'randomx-batch';
export const SEARCH_KIND = 'randomx-search';
export const BENCHMARK_KIND = 'randomx-benchmark';

/** The fields every RandomX result carries, and a fast job's `dataset_source`. */
function jobSummary(r: {
  mode: string;
  threads: number;
  hashRate: number;
  datasetSource?: DatasetSource;
}): TypedDict {
  return {
    mode: typed.s(r.mode),
    threads: typed.u(r.threads),
    hashrate: typed.d(r.hashRate),
    ...(r.datasetSource ? { dataset_source: typed.s(r.datasetSource) } : {}),
  };
}

export function batchKind(engine: RandomXEngine): TaskKind<BatchParams> {
  return {
    name: BATCH_KIND,
    unit: 'hashes',
    cancelable: true,
    run: async (ctx, params) => {
      const { key, inputs, ...options } = params;
      const result = await engine.hashBatch(key, inputs, options, ctx);
      return { hashes: typed.aay(result.hashes), ...jobSummary(result) };
    },
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
    ...jobSummary(result),
  };
}

/** The search kind, and how many queued searches hold input they have not started on yet. */
export type SearchKind = TaskKind<SearchParamsJson> & { readonly waitingInputs: number };

export function searchKind(engine: RandomXEngine): SearchKind {
  const sessions = new Map<string, SearchSession>();
  /** Input that arrived while the task was still queued, applied when it starts. */
  const early = new Map<string, SearchInput>();
  return {
    name: SEARCH_KIND,
    unit: 'hashes',
    cancelable: true,
    resumable: true,
    get waitingInputs() {
      return early.size;
    },
    input: (ctx: TaskContext, data) => {
      const session = sessions.get(ctx.id);
      if (session) {
        session.input(searchInput(data, session.job));
        return;
      }
      const before = early.get(ctx.id);
      const input = searchInput(data, before?.job ?? restoredJob(ctx));
      early.set(ctx.id, {
        job: input.job ?? before?.job,
        nextKey: input.nextKey !== undefined ? input.nextKey : before?.nextKey,
      });
      // Cancelling a queued task aborts its signal without ever running it: let go of the
      // input then, or the map keeps it for the daemon's life.
      if (!before) ctx.signal.addEventListener('abort', () => early.delete(ctx.id), { once: true });
    },
    run: async (ctx, params) => {
      const restored = stateFromJson(ctx.restoredCheckpoint);
      const typedParams = restored ? storedSearch(params) : searchFromJson(params);
      const session = engine.search(typedParams, searchHooks(ctx), restored);
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

export function benchmarkKind(engine: RandomXEngine): TaskKind<BenchmarkParamsJson> {
  return {
    name: BENCHMARK_KIND,
    unit: 'hashes',
    cancelable: true,
    run: async (ctx, params) => {
      const result = await engine.benchmark(benchmarkFromJson(params), ctx);
      return {
        ...jobSummary(result),
        init_seconds: typed.d(result.initSeconds),
        cache_seconds: typed.d(result.cacheSeconds),
        dataset_seconds: typed.d(result.datasetSeconds),
        hash_seconds: typed.d(result.hashSeconds),
        nonces: typed.u(result.nonces),
        ...(result.next
          ? {
              next_prepare_seconds: typed.d(result.next.prepareSeconds),
              switch_seconds: typed.d(result.next.switchSeconds),
              next_hashrate: typed.d(result.next.hashRate),
              ...(result.next.datasetSource
                ? { next_dataset_source: typed.s(result.next.datasetSource) }
                : {}),
            }
          : {}),
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
