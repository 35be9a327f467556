/**
 * Preloaded into a daemon under test (`node --expose-gc --require`): on SIGUSR2 it collects
 * garbage and prints `memory: rss=<bytes> heap=<bytes>`, so a test can compare memory that
 * stays instead of RSS that swings with the collector's timing. Nothing of the daemon changes.
 */
process.on('SIGUSR2', () => {
  const collect = (globalThis as { gc?: () => void }).gc;
  collect?.();
  collect?.();
  const m = process.memoryUsage();
  process.stdout.write(`memory: rss=${m.rss} heap=${m.heapUsed}\n`);
});

export const GC_ON_SIGNAL_OPTIONS = `--expose-gc --require ${__filename}`;

/** Ask a daemon started with GC_ON_SIGNAL_OPTIONS for its memory after a full collection. */
export async function memoryAfterGc(
  pid: number,
  output: () => string,
): Promise<{ rss: number; heap: number }> {
  const seen = (output().match(/^memory: /gm) ?? []).length;
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    const lines = output().match(/^memory: rss=(\d+) heap=(\d+)$/gm) ?? [];
    if (lines.length > seen) {
      const [, rss, heap] = /rss=(\d+) heap=(\d+)/.exec(lines[lines.length - 1]) as string[];
      return { rss: Number(rss), heap: Number(heap) };
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the daemon did not report its memory');
}

/**
 * The least of `readings` such reports 250 ms apart: what stays, once the daemon has also
 * dropped what it lets go of a moment late (the state of clients that just left).
 */
export async function settledMemoryAfterGc(
  pid: number,
  output: () => string,
  readings = 4,
): Promise<{ rss: number; heap: number }> {
  const seen: { rss: number; heap: number }[] = [];
  for (let i = 0; i < readings; i++) {
    seen.push(await memoryAfterGc(pid, output));
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    rss: Math.min(...seen.map((m) => m.rss)),
    heap: Math.min(...seen.map((m) => m.heap)),
  };
}
