/**
 * Dispatch to the worker pool: one piscina pool (one VM per worker), started on first use,
 * and the fan-out of a nonce scan across several of its workers under one control word.
 */
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { VigilError } from '../core/errors';
import { JobControl, cancelled, workerFailure } from './control';
import type { ScanReport, ScanRequest, WorkerRequest } from './protocol';
import type { JobHooks } from './types';

/** The production worker; tests substitute their own file through `workerFile`. */
export const WORKER_FILE = path.join(__dirname, 'worker.js');

export interface PoolOptions {
  /** The worker script (default: worker.js beside this file). */
  file?: string;
  /** Nice value of the workers' threads: a background pool yields to hashing. */
  nice?: number;
  /** Let idle workers end (a background pool); otherwise they stay for the daemon's life. */
  transient?: boolean;
}

/** How long an idle worker of a transient pool stays before it ends. */
const TRANSIENT_IDLE_MS = 30_000;

export class WorkerPool {
  private workers: Piscina | undefined;
  /** Settles once every worker the pool started with is running (or gone). */
  private online: Promise<void> = Promise.resolve();
  private readonly controls = new Set<JobControl>();
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly options: PoolOptions = {},
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  private get pool(): Piscina {
    if (this.closed) throw new VigilError('Failed', 'the RandomX engine is shut down');
    if (this.workers) return this.workers;
    const workers = new Piscina({
      filename: this.options.file ?? WORKER_FILE,
      minThreads: this.options.transient ? 0 : this.size,
      maxThreads: this.size,
      idleTimeout: this.options.transient ? TRANSIENT_IDLE_MS : 0,
      concurrentTasksPerWorker: 1,
      workerData: { nice: this.options.nice ?? 0 },
    });
    // Listened to before the event loop turns, so no worker's start is missed.
    this.online = Promise.all(
      workers.threads.map(
        (worker) =>
          new Promise<void>((resolve) => {
            worker.once('online', resolve);
            worker.once('exit', resolve);
          }),
      ),
    ).then(() => {});
    this.workers = workers;
    return workers;
  }

  /**
   * Once the workers the pool starts with run: each reserves address space for its own V8
   * heap when it starts, and a thread that cannot do so aborts the whole process. So a
   * dataset that takes most of what is left is allocated only after them, and fails alone.
   */
  started(): Promise<void> {
    void this.pool;
    return this.online;
  }

  /** One request on one worker; a worker's failure becomes a Failed VigilError. */
  async run<T>(request: WorkerRequest): Promise<T> {
    try {
      return (await this.pool.run(request)) as T;
    } catch (e) {
      throw workerFailure(e);
    }
  }

  /**
   * Run `work` under `control`, passing the job's cancel and pause on to it; close() cancels
   * it too. Throws Cancelled if the job was cancelled meanwhile.
   */
  async follow<T>(control: JobControl, hooks: JobHooks, work: Promise<T>): Promise<T> {
    this.controls.add(control);
    try {
      return await control.follow(hooks, work);
    } finally {
      this.controls.delete(control);
    }
  }

  /** Hash a nonce range on `workers` workers; see ScanRun. */
  scan(
    request: Omit<ScanRequest, 'port' | 'counter' | 'control'>,
    start: number,
    workers: number,
    paused: boolean,
    onReport: (report: ScanReport) => void,
  ): ScanRun {
    return new ScanRun(this.pool, request, start, workers, paused, onReport);
  }

  /** Stop every job, then the workers; after this no worker touches native memory. */
  async close(): Promise<void> {
    this.closed = true;
    for (const control of this.controls) control.cancel();
    await this.workers?.destroy();
  }
}

/** One scan (search or benchmark) of a nonce range across some workers of the pool. */
export class ScanRun {
  readonly control: JobControl;
  private readonly watermarks: number[];
  readonly done: Promise<void>;

  constructor(
    pool: Piscina,
    request: Omit<ScanRequest, 'port' | 'counter' | 'control'>,
    start: number,
    workers: number,
    paused: boolean,
    onReport: (report: ScanReport) => void,
  ) {
    this.control = new JobControl(paused);
    const counter = new BigInt64Array(new SharedArrayBuffer(8));
    counter[0] = BigInt(start);
    this.watermarks = new Array<number>(workers).fill(start);
    const runs: Array<Promise<void>> = [];
    for (let i = 0; i < workers; i++) {
      const { port1, port2 } = new MessageChannel();
      // Reports on one port arrive in order, so the final one means none is still in flight.
      let finalReport: () => void = () => {};
      const finished = new Promise<void>((resolve) => (finalReport = resolve));
      port1.on('message', (report: ScanReport) => {
        this.watermarks[i] = report.watermark;
        onReport(report);
        if (report.final) finalReport();
      });
      const message: ScanRequest = {
        ...request,
        counter: counter.buffer as SharedArrayBuffer,
        control: this.control.buffer,
        port: port2,
      };
      const task = pool.run(message, { transferList: [port2] }) as Promise<number>;
      runs.push(
        task.then(
          () => finished.finally(() => port1.close()),
          (e: unknown) => {
            port1.close();
            // One worker failed: stop its siblings, then fail the job.
            this.control.cancel();
            throw workerFailure(e);
          },
        ),
      );
    }
    this.done = Promise.allSettled(runs).then((results) => {
      const failure = results.find((r) => r.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason;
    });
  }

  /** Lowest nonce not known to be finished: the resume point. */
  nextNonce(): number {
    return Math.min(...this.watermarks);
  }

  stop(): void {
    this.control.stop();
  }
}

/** Follow a scan to its end as one job's work; Cancelled if the job was cancelled. */
export async function followScan(pool: WorkerPool, scan: ScanRun, hooks: JobHooks): Promise<void> {
  await pool.follow(scan.control, hooks, scan.done);
  if (hooks.signal.aborted) throw cancelled();
}
