import { VigilClient, type BusTarget } from './client';
import { parseCommandArgs, type CliContext, type FollowOptions, type TaskOutcome } from './command';
import {
  LiveRegion,
  progressSink,
  type OutputStream,
  type ProgressMode,
  type ProgressSink,
} from './progress';
import { followTask } from './tasks';
import { formatTable, toJson } from './values';

export interface ContextOptions {
  json: boolean;
  target: BusTarget;
  stdout: OutputStream;
  stderr: OutputStream;
  signal: AbortSignal;
}

/** The CliContext vigilctl hands to commands, plus `close()` for the end of the run. */
export class RunContext implements CliContext {
  private client: Promise<VigilClient> | undefined;

  constructor(private readonly options: ContextOptions) {}

  get json(): boolean {
    return this.options.json;
  }

  get signal(): AbortSignal {
    return this.options.signal;
  }

  connect(): Promise<VigilClient> {
    this.client ??= VigilClient.connect(this.options.target);
    return this.client;
  }

  parse = parseCommandArgs;

  print(line = ''): void {
    this.options.stdout.write(line + '\n');
  }

  printJson(value: unknown): void {
    this.options.stdout.write(JSON.stringify(toJson(value), null, 2) + '\n');
  }

  printTable(headers: string[], rows: string[][]): void {
    for (const line of formatTable(headers, rows)) this.print(line);
  }

  note(line: string): void {
    this.options.stderr.write(line + '\n');
  }

  /**
   * Progress of a followed task goes to stderr so stdout stays the result: a bar when stderr
   * is a terminal, plain lines otherwise (none with --json, whose stdout is the document).
   */
  progressMode(quiet = false): ProgressMode {
    if (quiet) return 'none';
    if (this.options.stderr.isTTY) return 'bar';
    return this.json ? 'none' : 'plain';
  }

  async followTask(path: string, options: FollowOptions = {}): Promise<TaskOutcome> {
    const client = await this.connect();
    const sink = progressSink(this.options.stderr, this.progressMode(options.quiet));
    try {
      return await followTask(client, path, sink, this.signal);
    } finally {
      if (sink instanceof LiveRegion) sink.finish();
      else sink.close();
    }
  }

  liveOutput(): ProgressSink {
    const { stdout } = this.options;
    return progressSink(stdout, this.json ? 'none' : stdout.isTTY ? 'bar' : 'plain');
  }

  /** Disconnect, if connected. */
  async close(): Promise<void> {
    if (!this.client) return;
    try {
      (await this.client).close();
    } catch {
      // never connected: nothing to close
    }
  }
}
