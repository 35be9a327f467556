/**
 * Search: try the nonces of a range, keep those whose hash meets the difficulty, checkpoint
 * the resume point, and switch to a new job (Task.Input) without restarting the pool.
 */
import { performance } from 'node:perf_hooks';
import { cancelled } from './control';
import { followScan, type ScanRun } from './dispatch';
import { datasetSource, type JobRuntime } from './job-runtime';
import type { Preparation } from './resources';
import { targetOf } from './validate';
import type {
  DatasetSource,
  FoundNonce,
  SearchHooks,
  SearchInput,
  SearchJob,
  SearchParams,
  SearchResult,
  SearchState,
} from './types';

export class SearchSession {
  /** A job given through input, taken at the next turn of the loop. */
  private pending: SearchJob | undefined;
  private scan: ScanRun | undefined;
  private latest: SearchJob;
  private nextKey: Buffer | undefined;
  /** The next key's dataset, prepared in the background while the current job hashes. */
  private preparation: Preparation | undefined;
  /** The key of the job hashing now; undefined until the search has its first lease. */
  private hashingKey: Buffer | undefined;

  constructor(
    private readonly rt: JobRuntime,
    private readonly params: SearchParams,
    private readonly hooks: SearchHooks,
    private readonly restored: SearchState | undefined,
  ) {
    this.latest = restored?.job ?? params;
    this.nextKey = restored ? restored.nextKey : params.nextKey;
  }

  /**
   * Task.Input: a new job (the workers drop the old one and take this one) and/or a new next
   * key (whose dataset is then prepared in the background).
   */
  input(input: SearchInput): void {
    if (input.nextKey !== undefined) {
      this.nextKey = input.nextKey ?? undefined;
      if (this.hashingKey) this.prepareNextKey(this.hashingKey);
    }
    if (input.job) {
      this.pending = input.job;
      this.latest = input.job;
      this.scan?.stop();
    }
  }

  /**
   * Keep the next key's dataset prepared while `current` hashes (fast mode only): started
   * once the current dataset is there, let go when the next key changes or becomes current.
   */
  private prepareNextKey(current: Buffer | undefined): void {
    const wanted =
      current && this.params.mode === 'fast' && this.nextKey && !this.nextKey.equals(current)
        ? this.nextKey
        : undefined;
    if (this.preparation && !(wanted && this.preparation.key.equals(wanted))) {
      this.preparation.release();
      this.preparation = undefined;
    }
    if (wanted && !this.preparation) {
      this.preparation = this.rt.resources.prepare(wanted) ?? {
        // No memory for it: accepted (and logged), the switch builds as it would without.
        key: wanted,
        ready: Promise.resolve(),
        release: () => {},
      };
    }
  }

  /** The job the search is on, or will switch to next. */
  get job(): SearchJob {
    return this.latest;
  }

  private takePending(): SearchJob | undefined {
    const job = this.pending;
    this.pending = undefined;
    return job;
  }

  async run(): Promise<SearchResult> {
    const { rt, params, hooks } = this;
    const end = params.startNonce + params.count;
    const state: SearchState = this.restored ?? {
      job: {
        key: params.key,
        blob: params.blob,
        nonceOffset: params.nonceOffset,
        difficulty: params.difficulty,
      },
      jobIndex: 0,
      nextNonce: params.startNonce,
      found: [],
      superseded: [],
      hashes: 0,
    };
    const found = new Map<number, Buffer>(state.found.map((f) => [f.nonce, f.hash]));
    const snapshot = (nextNonce: number): SearchState => ({
      ...state,
      nextKey: this.nextKey,
      nextNonce,
      found: [...found]
        .sort((a, b) => a[0] - b[0])
        .map(([nonce, hash]): FoundNonce => ({ nonce, hash })),
    });

    const job = await rt.start(params.threads, hooks.signal);
    const threads = job.threads;
    const started = performance.now();
    let hashesThisRun = 0;
    /** Set once `found` reached maxFound: the search ends there rather than grow without bound. */
    let truncated = false;
    let source: DatasetSource | undefined;
    try {
      for (;;) {
        const next = this.takePending();
        if (next) {
          for (const [nonce, hash] of found)
            state.superseded.push({ nonce, hash, job: state.jobIndex });
          // Bounded like `found`: the most recent answers of earlier jobs.
          state.superseded.splice(0, Math.max(0, state.superseded.length - rt.maxFound));
          found.clear();
          state.job = next;
          state.jobIndex++;
          state.nextNonce = params.startNonce;
          hooks.checkpoint(snapshot(state.nextNonce));
        }
        const lease = await rt.resources.acquire(state.job.key, params.mode, threads, hooks);
        this.hashingKey = state.job.key;
        source = datasetSource(lease.resource, params.mode).datasetSource;
        this.prepareNextKey(state.job.key);
        try {
          if (this.pending) continue;
          hooks.setPhase('hashing', params.count);
          if (state.nextNonce >= end) break;
          const base = state.nextNonce - params.startNonce;
          let done = 0;
          const scan = rt.pool.scan(
            {
              op: 'scan',
              binding: lease.binding,
              blob: state.job.blob,
              nonceOffset: state.job.nonceOffset,
              end,
              target: targetOf(state.job.difficulty),
            },
            state.nextNonce,
            threads,
            hooks.paused,
            (report) => {
              done += report.hashes;
              state.hashes += report.hashes;
              hashesThisRun += report.hashes;
              rt.meter.add(report.hashes);
              for (const [nonce, hash] of report.found) found.set(nonce, Buffer.from(hash));
              hooks.progress(Math.min(base + done, params.count), params.count);
              if (found.size >= rt.maxFound && !truncated) {
                truncated = true;
                scan.stop();
              }
            },
          );
          this.scan = scan;
          // Input that came while the lease was being taken: switch at once.
          if (this.pending) scan.stop();
          const timer = setInterval(
            () => hooks.checkpoint(snapshot(scan.nextNonce())),
            rt.checkpointIntervalMs,
          );
          try {
            await followScan(rt.pool, scan, hooks);
          } finally {
            clearInterval(timer);
            this.scan = undefined;
            state.nextNonce = scan.nextNonce();
            if (truncated) {
              // Keep the lowest maxFound answers; resume after the last one kept, so that
              // every nonce below nextNonce is hashed and its answers are all in `found`.
              const kept = [...found.keys()].sort((a, b) => a - b).slice(0, rt.maxFound);
              const last = kept[kept.length - 1];
              for (const nonce of [...found.keys()]) if (nonce > last) found.delete(nonce);
              state.nextNonce = Math.min(state.nextNonce, last + 1);
            }
            // Stopped by a daemon shutdown (or cancel): keep the freshest resume point.
            if (hooks.signal.aborted) hooks.checkpoint(snapshot(state.nextNonce));
          }
        } finally {
          lease.release();
        }
        if (hooks.signal.aborted) throw cancelled();
        if (truncated || !this.pending) break;
      }
      const seconds = (performance.now() - started) / 1000;
      return {
        ...snapshot(state.nextNonce),
        truncated,
        mode: params.mode,
        threads,
        hashRate: seconds > 0 ? hashesThisRun / seconds : 0,
        ...(source ? { datasetSource: source } : {}),
      };
    } finally {
      this.hashingKey = undefined;
      this.prepareNextKey(undefined);
      job.end();
    }
  }
}
