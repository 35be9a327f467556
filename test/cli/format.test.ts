import { Variant } from '../../src/bus/values';
import { chooseBus } from '../../src/cli/client';
import { EXIT, intArg, parseCommandArgs, UsageError, type CliCommand } from '../../src/cli/command';
import { commandGroup, commands, findCommand } from '../../src/cli/commands';
import {
  applyProgressSignal,
  applyProperties,
  barLine,
  emptyView,
  etaSeconds,
  LiveRegion,
  PlainProgress,
  plainLine,
  type TaskView,
} from '../../src/cli/progress';
import { formatCount, formatDuration, formatTable, toJson, unwrap } from '../../src/cli/values';
import { splitGlobals } from '../../src/cli/vigilctl';

// The pure parts of vigilctl: argument handling, JSON encoding and progress rendering.

function view(overrides: Partial<TaskView> = {}): TaskView {
  return {
    ...emptyView('3f2a9c1b0d4e'),
    kind: 'slow-random',
    state: 'running',
    phase: 'drawing',
    unit: 'bits',
    ...overrides,
  };
}

class Sink {
  text = '';
  isTTY = true;
  constructor(public columns = 80) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

describe('global options', () => {
  test('are taken from anywhere before --, leaving the command in order', () => {
    const { globals, rest } = splitGlobals(['tasks', '--json', '--bus', 'unix:path=/x', '-n', '3']);
    expect(globals).toEqual({ json: true, bus: 'unix:path=/x' });
    expect(rest).toEqual(['tasks', '-n', '3']);
    expect(splitGlobals(['--bus=unix:path=/y', 'watch']).globals.bus).toBe('unix:path=/y');
    expect(splitGlobals(['wait', '--', '--json']).rest).toEqual(['wait', '--', '--json']);
  });

  test('two bus choices or a --bus without address are usage errors', () => {
    expect(() => splitGlobals(['--system', '--bus', 'x', 'tasks'])).toThrow(UsageError);
    expect(() => splitGlobals(['tasks', '--bus'])).toThrow(/needs an ADDRESS/);
    expect(() => splitGlobals(['--bus=', 'tasks'])).toThrow(/needs an ADDRESS/);
  });

  test('bus choice: options first, then the session bus, then VIGIL_BUS_ADDRESS', () => {
    const both = { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/s', VIGIL_BUS_ADDRESS: 'unix:path=/v' };
    expect(chooseBus({}, both)).toEqual({ kind: 'session' });
    expect(chooseBus({}, { VIGIL_BUS_ADDRESS: 'unix:path=/v' })).toEqual({
      kind: 'address',
      address: 'unix:path=/v',
    });
    expect(chooseBus({ session: true }, { VIGIL_BUS_ADDRESS: 'unix:path=/v' })).toEqual({
      kind: 'session',
    });
    expect(chooseBus({ system: true }, both)).toEqual({ kind: 'system' });
    expect(chooseBus({ bus: 'tcp:host=h' }, both)).toEqual({
      kind: 'address',
      address: 'tcp:host=h',
    });
  });
});

describe('command registry', () => {
  const fake = (name: string): CliCommand => ({
    name,
    usage: name,
    summary: name,
    run: async () => EXIT.OK,
  });
  const registry = [fake('hosts'), fake('hosts add'), fake('wake')];

  test('the longest matching name wins and the rest are its arguments', () => {
    expect(findCommand(['hosts', 'add', 'pc', 'aa:bb'], registry)).toMatchObject({
      command: { name: 'hosts add' },
      args: ['pc', 'aa:bb'],
    });
    expect(findCommand(['hosts', '--json'], registry)).toMatchObject({
      command: { name: 'hosts' },
      args: ['--json'],
    });
    expect(findCommand(['hosts', 'frob'], registry)?.args).toEqual(['frob']);
    expect(findCommand(['sleep'], registry)).toBeUndefined();
    expect(findCommand([], registry)).toBeUndefined();
  });

  test('the built-in registry has every core command once, each with usage and summary', () => {
    const names = commands.map((c) => c.name);
    for (const n of [
      'random quick',
      'random slow',
      'tasks',
      'task',
      'watch',
      'wait',
      'cancel',
      'pause',
      'resume',
      'history',
    ]) {
      expect(names.filter((x) => x === n)).toHaveLength(1);
    }
    expect(new Set(names).size).toBe(names.length);
    for (const c of commands) {
      expect(c.usage.startsWith(c.name)).toBe(true);
      expect(c.summary.length).toBeGreaterThan(0);
    }
    expect(commandGroup('random').map((c) => c.name)).toEqual(['random quick', 'random slow']);
    // The capability modules are in the registry too.
    for (const n of ['hash', 'hash-batch', 'search', 'bench', 'hosts', 'hosts add', 'wake']) {
      expect(names).toContain(n);
    }
  });
});

describe('command arguments', () => {
  test('negative numbers are values, not options', () => {
    expect(parseCommandArgs(['-5'], {}, 1, 1).positionals).toEqual(['-5']);
    const { values } = parseCommandArgs(['--limit', '-2'], { limit: { type: 'string' } });
    expect(values.limit).toBe('-2');
  });

  test('unknown options and wrong positional counts are usage errors', () => {
    expect(() => parseCommandArgs(['--nope'])).toThrow(UsageError);
    expect(() => parseCommandArgs([], {}, 1)).toThrow(/missing argument/);
    expect(() => parseCommandArgs(['a', 'b'], {}, 0, 1)).toThrow(/unexpected argument 'b'/);
  });

  test('intArg accepts integers in range only', () => {
    expect(intArg('42', 'N', 0, 100)).toBe(42);
    expect(intArg('-3', 'N', -5, 5)).toBe(-3);
    for (const bad of ['', 'x', '1e3', '0x10', '2.5', '101', '-6']) {
      expect(() => intArg(bad, 'N', -5, 100)).toThrow(UsageError);
    }
  });
});

describe('JSON encoding', () => {
  test('bytes as hex, 64-bit integers as numbers when exact and strings beyond', () => {
    const value = {
      hash: Buffer.from([0xde, 0xad, 0x01]),
      small: 1795224936804000n,
      big: 18446744073709551615n,
      nested: new Variant('a{sv}', { v: new Variant('ay', Buffer.from('ab')) }),
      list: [1n, Buffer.alloc(0)],
      flag: true,
    };
    expect(toJson(value)).toEqual({
      hash: 'dead01',
      small: 1795224936804000,
      big: '18446744073709551615',
      nested: { v: '6162' },
      list: [1, ''],
      flag: true,
    });
  });

  test('unwrap strips Variants and keeps Buffers and bigints', () => {
    const u = unwrap(
      new Variant('a{sv}', { n: new Variant('t', 5n), b: new Variant('ay', Buffer.from('x')) }),
    );
    expect(u).toEqual({ n: 5n, b: Buffer.from('x') });
  });
});

describe('progress rendering', () => {
  test('a bar line never exceeds the terminal width and fills with progress', () => {
    for (const width of [20, 40, 60, 80, 100, 132, 200]) {
      for (const progress of [0, 0.5, 1]) {
        const line = barLine(
          view({ progress, progressValid: true, done: 5, total: 10, rate: 3.25 }),
          width,
          0,
        );
        expect(line.length).toBeLessThan(width);
      }
    }
    const half = barLine(view({ progress: 0.5, progressValid: true, done: 5, total: 10 }), 120, 0);
    const bar = /\[([#-]+)\]/.exec(half)?.[1] ?? '';
    expect(bar.length).toBeGreaterThan(10);
    expect(bar.split('#').length - 1).toBe(Math.round(bar.length / 2));
    expect(half).toMatch(/ 50%  5\/10 bits/);
    const full = barLine(view({ state: 'completed', progress: 1, done: 10, total: 10 }), 120, 0);
    expect(full).toMatch(/\[#+\] 100%/);
  });

  test('an unknown total shows a moving marker and no percentage', () => {
    const line = barLine(view({ done: 3 }), 120, 0);
    expect(line).toMatch(/\[---=-+\]/);
    expect(line).toMatch(/\?%/);
  });

  test('plain lines carry phase, percent, amount, rate and ETA', () => {
    const now = 1_000_000;
    const v = view({ progress: 0.25, progressValid: true, done: 250, total: 1000, rate: 50 });
    expect(plainLine(v, now)).toBe(
      '3f2a9c1b0d4e slow-random running drawing   25%  250/1000 bits  50 bits/s  ETA 15s',
    );
    v.expectedEndTime = (now + 90_000) * 1000;
    expect(etaSeconds(v, now)).toBe(90);
    expect(plainLine(v, now)).toMatch(/ETA 1m30s$/);
  });

  test('Progress never goes back, even if an older signal arrives late', () => {
    const v = view();
    applyProgressSignal(v, [0.6, 6n, 10n, 2.5]);
    applyProgressSignal(v, [0.4, 4n, 10n, 2.0]);
    expect(v.progress).toBe(0.6);
    expect(v.done).toBe(6);
    applyProperties(v, { Progress: 0.5, State: 'paused' });
    expect(v.progress).toBe(0.6);
    expect(v.state).toBe('paused');
  });

  test('plain progress prints on state changes and otherwise at most once per interval', () => {
    let now = 0;
    const sink = new Sink();
    const p = new PlainProgress(sink, 1000, () => now);
    const v = view({ progressValid: true, total: 100 });
    for (let i = 1; i <= 25; i++) {
      now += 100;
      p.update('t', applyProgressSignal(v, [i / 100, BigInt(i), 100n, 10]));
    }
    // 2.5 s of updates every 100 ms: the first (t=0.1 s), then t=1.1 s and t=2.1 s.
    expect(sink.text.trim().split('\n')).toHaveLength(3);
    p.update('t', { ...v, state: 'paused' });
    expect(sink.text.trim().split('\n')).toHaveLength(4);
    expect(sink.text).toMatch(/paused/);
  });

  test('terminal bars are redrawn in place, logs scroll above, close erases them', () => {
    const sink = new Sink(100);
    const region = new LiveRegion(sink);
    region.update(
      'a',
      view({ id: 'aaaa', progress: 0.1, progressValid: true, total: 10, done: 1 }),
    );
    region.update(
      'b',
      view({ id: 'bbbb', progress: 0.2, progressValid: true, total: 10, done: 2 }),
    );
    region.log('first');
    expect(sink.text).toMatch(/^first\naaaa .*\nbbbb .*\n$/);
    sink.text = '';
    region.remove('a');
    region.log('second');
    // Up over the two bars drawn, erase, log, then the one bar left.
    expect(sink.text).toMatch(/^\r\x1b\[2A\x1b\[Jsecond\nbbbb .*\n$/);
    sink.text = '';
    region.close();
    expect(sink.text).toBe('\r\x1b[1A\x1b[J');
    region.update('c', view());
    region.log('after');
    expect(sink.text).toBe('\r\x1b[1A\x1b[Jafter\n');
  });

  test('durations, counts and tables', () => {
    expect([950, 12345, 123456, 4.5e6, 2.5].map(formatCount)).toEqual([
      '950',
      '12345',
      '123k',
      '4.50M',
      '2.50',
    ]);
    expect(formatDuration(4.25)).toBe('4.3s');
    expect(formatDuration(65)).toBe('1m05s');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(formatDuration(-1)).toBe('--');
    expect(formatTable(['A', 'BB'], [['xxx', 'y']])).toEqual(['A    BB', 'xxx  y']);
  });
});
