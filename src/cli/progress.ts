import { formatCount, formatDuration, num, str, type BusValue } from './values';

/** What vigilctl shows of a task: the Task properties that drive a progress line. */
export interface TaskView {
  id: string;
  kind: string;
  state: string;
  progress: number;
  progressValid: boolean;
  phase: string;
  done: number;
  total: number;
  unit: string;
  rate: number;
  /** Microseconds since the epoch, 0 while unknown. */
  expectedEndTime: number;
}

export const FINAL_STATES: ReadonlySet<string> = new Set([
  'completed',
  'failed',
  'cancelled',
  'interrupted',
]);

export function emptyView(id: string): TaskView {
  return {
    id,
    kind: '',
    state: 'queued',
    progress: 0,
    progressValid: false,
    phase: '',
    done: 0,
    total: 0,
    unit: '',
    rate: 0,
    expectedEndTime: 0,
  };
}

/** Fold Task properties (from GetAll or PropertiesChanged) into a view. */
export function applyProperties(view: TaskView, props: Record<string, BusValue>): TaskView {
  const has = (k: string): boolean => props[k] !== undefined;
  if (has('Id')) view.id = str(props.Id, view.id);
  if (has('Kind')) view.kind = str(props.Kind, view.kind);
  if (has('State')) view.state = str(props.State, view.state);
  if (has('Progress')) view.progress = Math.max(view.progress, num(props.Progress));
  if (has('ProgressValid')) view.progressValid = props.ProgressValid === true;
  if (has('Phase')) view.phase = str(props.Phase, view.phase);
  if (has('Done')) view.done = num(props.Done);
  if (has('Total')) view.total = num(props.Total);
  if (has('Unit')) view.unit = str(props.Unit, view.unit);
  if (has('Rate')) view.rate = num(props.Rate);
  if (has('ExpectedEndTime')) view.expectedEndTime = num(props.ExpectedEndTime);
  return view;
}

/** Fold a Task `Progress(d progress, t done, t total, d rate)` signal into a view. */
export function applyProgressSignal(view: TaskView, body: unknown[]): TaskView {
  const [progress, done, total, rate] = body;
  // Progress never decreases on the bus; keep it so here too if signals arrive out of order.
  view.progress = Math.max(view.progress, num(progress));
  view.done = Math.max(view.done, num(done));
  view.total = num(total, view.total);
  view.rate = num(rate, view.rate);
  if (view.total > 0) view.progressValid = true;
  return view;
}

/** Seconds left: the daemon's ExpectedEndTime when known, else from rate and remaining work. */
export function etaSeconds(view: TaskView, nowMs: number): number | undefined {
  if (view.expectedEndTime > 0) return Math.max(0, view.expectedEndTime / 1000 - nowMs) / 1000;
  if (view.rate > 0 && view.total > view.done) return (view.total - view.done) / view.rate;
  return undefined;
}

function percent(view: TaskView): string {
  if (!view.progressValid && view.progress === 0) return '  ?%';
  return `${Math.floor(Math.min(1, Math.max(0, view.progress)) * 100)
    .toString()
    .padStart(3)}%`;
}

/** `5/12 bits`, or `5 bits` while the total is unknown. */
function amount(view: TaskView): string {
  const unit = view.unit ? ` ${view.unit}` : '';
  if (view.total > 0) return `${formatCount(view.done)}/${formatCount(view.total)}${unit}`;
  return view.done > 0 ? `${formatCount(view.done)}${unit}` : '';
}

function rateText(view: TaskView): string {
  if (view.rate <= 0) return '';
  return `${formatCount(view.rate)} ${view.unit || 'units'}/s`;
}

/** The parts after the bar: percent, amount, rate, ETA (only those that are known). */
function details(view: TaskView, nowMs: number): string[] {
  const parts = [percent(view)];
  const a = amount(view);
  if (a) parts.push(a);
  const r = rateText(view);
  if (r) parts.push(r);
  if (!FINAL_STATES.has(view.state) && view.state !== 'queued') {
    const eta = etaSeconds(view, nowMs);
    parts.push(`ETA ${eta === undefined ? '--' : formatDuration(eta)}`);
  }
  return parts;
}

function label(view: TaskView): string {
  const phase = view.phase && view.state === 'running' ? view.phase : view.state;
  return [view.id, view.kind, phase].filter(Boolean).join(' ');
}

/** One plain progress line for logs and pipes. */
export function plainLine(view: TaskView, nowMs = Date.now()): string {
  const state = view.phase && view.state === 'running' ? `running ${view.phase}` : view.state;
  return [`${view.id} ${view.kind} ${state}`.trim(), ...details(view, nowMs)].join('  ');
}

/**
 * One terminal line with a bar, fitted into `width` columns. The bar's width depends only on
 * the terminal and the label, not on the changing numbers, so it does not jump; the kind is
 * left out on narrow terminals.
 */
export function barLine(view: TaskView, width: number, nowMs = Date.now()): string {
  const tail = details(view, nowMs).join('  ');
  const TAIL_ROOM = 46;
  let head = label(view);
  if (width - head.length - TAIL_ROOM < 16) head = label({ ...view, kind: '' });
  const barWidth = Math.min(40, width - head.length - TAIL_ROOM);
  if (barWidth < 8) return `${head}  ${tail}`.slice(0, Math.max(0, width - 1));
  let bar: string;
  if (view.progressValid || view.progress > 0 || view.state === 'completed') {
    const filled = Math.round(Math.min(1, view.progress) * barWidth);
    bar = '#'.repeat(filled) + '-'.repeat(barWidth - filled);
  } else {
    // Unknown total: a marker that moves with the work done so the bar still shows life.
    const pos = Math.floor(view.done) % barWidth;
    bar = '-'.repeat(pos) + '=' + '-'.repeat(barWidth - pos - 1);
  }
  return `${head} [${bar}] ${tail}`;
}

/** A text stream as vigilctl writes to it (process.stdout, process.stderr). */
export interface OutputStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/** Where progress of one or more tasks is shown. */
export interface ProgressSink {
  /** Show the task's current view (a bar on a terminal, a throttled line otherwise). */
  update(key: string, view: TaskView): void;
  /** Print a line that stays (above the bars on a terminal). */
  log(line: string): void;
  /** Forget a task; a terminal drops its bar. */
  remove(key: string): void;
  /** Erase the bars and stop drawing. */
  close(): void;
}

export type ProgressMode = 'bar' | 'plain' | 'none';

export function progressSink(stream: OutputStream, mode: ProgressMode): ProgressSink {
  if (mode === 'bar') return new LiveRegion(stream);
  if (mode === 'plain') return new PlainProgress(stream);
  return {
    update: () => undefined,
    log: (l) => void stream.write(l + '\n'),
    remove: () => undefined,
    close: () => undefined,
  };
}

/**
 * Plain progress for pipes and logs: a line when the state or phase changes, when the task
 * reaches 100 %, and otherwise at most once per `intervalMs` per task.
 */
export class PlainProgress implements ProgressSink {
  private readonly last = new Map<string, { at: number; key: string }>();

  constructor(
    private readonly stream: OutputStream,
    private readonly intervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  update(key: string, view: TaskView): void {
    const t = this.now();
    const signature = `${view.state}|${view.phase}|${view.progress >= 1}`;
    const prev = this.last.get(key);
    if (prev && prev.key === signature && t - prev.at < this.intervalMs) return;
    if (prev && prev.key === signature && view.progress === 0 && view.done === 0) return;
    this.last.set(key, { at: t, key: signature });
    this.stream.write(plainLine(view, t) + '\n');
  }

  log(line: string): void {
    this.stream.write(line + '\n');
  }

  remove(key: string): void {
    this.last.delete(key);
  }

  close(): void {
    this.last.clear();
  }
}

/**
 * Bars at the bottom of a terminal, one per task, redrawn in place (at most 10 times a
 * second); logged lines scroll above them.
 */
export class LiveRegion implements ProgressSink {
  private readonly views = new Map<string, TaskView>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly stream: OutputStream,
    private readonly redrawMs = 100,
  ) {}

  update(key: string, view: TaskView): void {
    if (this.closed) return;
    this.views.set(key, { ...view });
    this.schedule();
  }

  log(line: string): void {
    if (this.closed) {
      this.stream.write(line + '\n');
      return;
    }
    this.render([line]);
  }

  remove(key: string): void {
    if (this.views.delete(key)) this.schedule();
  }

  close(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.closed = true;
    this.render([]);
  }

  /** Leave the final bars on screen (for a single followed task) and stop drawing. */
  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.render([]);
    this.drawn = 0;
    this.closed = true;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.render([]);
    }, this.redrawMs);
  }

  private render(logLines: string[]): void {
    const width = Math.max(20, this.stream.columns || 80);
    // Move to the first bar line and erase everything below, then draw logs and bars again.
    let out = this.drawn > 0 ? `\r\x1b[${this.drawn}A\x1b[J` : '';
    for (const l of logLines) out += l + '\n';
    const bars = this.closed ? [] : [...this.views.values()].map((v) => barLine(v, width));
    for (const b of bars) out += b.slice(0, width - 1) + '\n';
    this.drawn = bars.length;
    if (out) this.stream.write(out);
  }
}
