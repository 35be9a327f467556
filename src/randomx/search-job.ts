/**
 * Search: try the nonces of a range, keep those whose hash meets the difficulty, checkpoint
 * the resume point, and switch to a new job (Task.Input) without restarting the pool.
 */
import { performance } from 'node:perf_hooks';
import { cancelled } from './control';
import { followScan, type ScanRun } from './dispatch';
import type { JobRuntime } from './job-runtime';
import { targetOf } from './validate';
import type {
  FoundNonce,
  SearchHooks,
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

  constructor(
    private readonly rt: JobRuntime,
    private readonly params: SearchParams,
    private readonly hooks: SearchHooks,
    private readonly restored: SearchState | undefined,
  ) {
    this.latest = restored?.job ?? params;
  }

  /** Switch to a new job (Task.Input): the workers drop the old one and take this one. */
  input(job: SearchJob): void {
    this.pending = job;
    this.latest = job;
    this.scan?.stop();
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
      };
    } finally {
      job.end();
    }
  }
}
