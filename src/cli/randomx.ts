import fs from 'node:fs';
import { Variant } from '../bus/values';
import { IFACE_PREFIX, ROOT_PATH } from './client';
import { EXIT, intArg, UsageError, type CliCommand, type CliContext } from './command';
import { num, str } from './values';

/** vigilctl's RandomX commands: hash, hash-batch, search, bench. */

const RANDOMX_PATH = `${ROOT_PATH}/RandomX`;
const RANDOMX_IFACE = `${IFACE_PREFIX}RandomX`;
const UINT32_MAX = 2 ** 32 - 1;
const U64_MAX = (1n << 64n) - 1n;

const HEX_HELP = '--hex      KEY, INPUT and BLOB are hex bytes (default: the text as UTF-8)';
const JOB_HELP =
  '--mode     light (256 MiB cache) or fast (2080 MiB dataset, built once per key)\n' +
  '--threads  workers to use (default: all of vigil’s RandomX threads)\n' +
  '--no-wait  print the task id and return at once';

const bytesOption = { hex: { type: 'boolean' as const } };
const jobOptionSpec = {
  mode: { type: 'string' as const },
  threads: { type: 'string' as const },
  'no-wait': { type: 'boolean' as const },
};

/** Every argument of this process as the bytes it was given (Linux keeps them as they came). */
function rawArguments(): Buffer[] {
  try {
    const cmdline = fs.readFileSync('/proc/self/cmdline');
    const args: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < cmdline.length; i++) {
      if (cmdline[i] === 0) {
        args.push(cmdline.subarray(start, i));
        start = i + 1;
      }
    }
    return args;
  } catch {
    return [];
  }
}

/**
 * An argument's bytes as typed. Node decodes argv as UTF-8, turning bytes that are not into
 * U+FFFD; such an argument is taken raw from the command line instead, so `vigilctl hash
 * $'\xff\xfe' x` hashes 0xff 0xfe, not the replacement characters.
 */
function textBytes(text: string, what: string): Buffer {
  const utf8 = Buffer.from(text, 'utf8');
  if (!text.includes('\uFFFD')) return utf8;
  const raw = rawArguments().filter((arg) => !arg.equals(utf8) && arg.toString('utf8') === text);
  const distinct = raw.filter((arg, i) => raw.findIndex((other) => other.equals(arg)) === i);
  if (distinct.length === 0) return utf8; // a real U+FFFD, typed as such
  if (distinct.length > 1) {
    throw new UsageError(
      `${what} is not UTF-8 and cannot be told from another argument; use --hex`,
    );
  }
  return Buffer.from(distinct[0]);
}

function bytes(text: string, hex: boolean, what: string): Buffer {
  if (!hex) return textBytes(text, what);
  const clean = text.replace(/^0x/i, '');
  if (!/^(?:[0-9a-f]{2})*$/i.test(clean)) {
    throw new UsageError(`${what} is not hex bytes: '${text}'`);
  }
  return Buffer.from(clean, 'hex');
}

function jobOptions(values: Record<string, unknown>): Record<string, Variant> {
  const options: Record<string, Variant> = {};
  if (typeof values.mode === 'string') options.mode = new Variant('s', values.mode);
  if (typeof values.threads === 'string') {
    options.threads = new Variant('u', intArg(values.threads, '--threads', 0, UINT32_MAX));
  }
  return options;
}

const taskId = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

/** Print the id and return (--no-wait), or follow the task and hand back its result. */
async function startOrFollow(
  ctx: CliContext,
  path: string,
  noWait: boolean,
): Promise<Record<string, unknown> | undefined> {
  if (noWait) {
    if (ctx.json) ctx.printJson({ id: taskId(path), path });
    else ctx.print(taskId(path));
    return undefined;
  }
  return (await ctx.followTask(path)).result;
}

const hashCommand: CliCommand = {
  name: 'hash',
  usage: 'hash KEY INPUT [--hex]',
  summary: 'RandomX hash of one input (light mode, or the fast dataset when ready for KEY)',
  help: HEX_HELP,
  async run(ctx, args) {
    const { values, positionals } = ctx.parse(args, bytesOption, 2, 2);
    const hex = values.hex === true;
    const key = bytes(positionals[0], hex, 'KEY');
    const input = bytes(positionals[1], hex, 'INPUT');
    const client = await ctx.connect();
    const [hash] = await client.call(RANDOMX_PATH, RANDOMX_IFACE, 'Hash', 'ayay', [key, input]);
    if (ctx.json) ctx.printJson({ hash });
    else ctx.print((hash as Buffer).toString('hex'));
    return EXIT.OK;
  },
};

const hashBatchCommand: CliCommand = {
  name: 'hash-batch',
  usage: 'hash-batch KEY INPUT... [--hex] [--mode M] [--threads N] [--no-wait]',
  summary: 'RandomX hashes of many inputs as a task, one line per input in order',
  help: `${HEX_HELP}\n${JOB_HELP}`,
  async run(ctx, args) {
    const { values, positionals } = ctx.parse(args, { ...bytesOption, ...jobOptionSpec }, 2);
    const hex = values.hex === true;
    const key = bytes(positionals[0], hex, 'KEY');
    const inputs = positionals.slice(1).map((p, i) => bytes(p, hex, `INPUT ${i + 1}`));
    const options = jobOptions(values);
    const client = await ctx.connect();
    const [path] = await client.call(RANDOMX_PATH, RANDOMX_IFACE, 'HashBatch', 'ayaaya{sv}', [
      key,
      inputs,
      options,
    ]);
    const result = await startOrFollow(ctx, path as string, values['no-wait'] === true);
    if (!result) return EXIT.OK;
    const hashes = (result.hashes ?? []) as Buffer[];
    if (ctx.json) ctx.printJson({ id: taskId(path as string), ...result });
    else for (const h of hashes) ctx.print(h.toString('hex'));
    return EXIT.OK;
  },
};

const searchCommand: CliCommand = {
  name: 'search',
  usage:
    'search KEY BLOB NONCE_OFFSET DIFFICULTY [--hex] [--start N] [--count N] [--next-key KEY] [--mode M] [--threads N] [--no-wait]',
  summary: 'try nonces at NONCE_OFFSET of BLOB; print every (nonce, hash) meeting DIFFICULTY',
  help:
    `${HEX_HELP}\n--start    first nonce (default 0)\n--count    nonces to try (default: up to 2^32)\n` +
    `--next-key the key a coming Input will switch to (fast mode: its dataset is prepared meanwhile)\n` +
    `${JOB_HELP}\nA new job can be fed to a running search with Task.Input({blob, key, nonce_offset, difficulty, next_key}).`,
  async run(ctx, args) {
    const { values, positionals } = ctx.parse(
      args,
      {
        ...bytesOption,
        ...jobOptionSpec,
        start: { type: 'string' },
        count: { type: 'string' },
        'next-key': { type: 'string' },
      },
      4,
      4,
    );
    const hex = values.hex === true;
    const key = bytes(positionals[0], hex, 'KEY');
    const blob = bytes(positionals[1], hex, 'BLOB');
    const offset = intArg(positionals[2], 'NONCE_OFFSET', 0, UINT32_MAX);
    if (!/^\d+$/.test(positionals[3]) || BigInt(positionals[3]) > U64_MAX) {
      throw new UsageError('DIFFICULTY must be an unsigned 64-bit integer');
    }
    const difficulty = BigInt(positionals[3]);
    const options = jobOptions(values);
    if (typeof values.start === 'string') {
      options.start_nonce = new Variant('u', intArg(values.start, '--start', 0, UINT32_MAX));
    }
    if (typeof values.count === 'string') {
      options.count = new Variant('t', BigInt(intArg(values.count, '--count', 0, 2 ** 32)));
    }
    if (typeof values['next-key'] === 'string') {
      options.next_key = new Variant('ay', bytes(values['next-key'], hex, '--next-key'));
    }
    const client = await ctx.connect();
    const [path] = await client.call(RANDOMX_PATH, RANDOMX_IFACE, 'Search', 'ayayuta{sv}', [
      key,
      blob,
      offset,
      difficulty,
      options,
    ]);
    const result = await startOrFollow(ctx, path as string, values['no-wait'] === true);
    if (!result) return EXIT.OK;
    if (ctx.json) {
      ctx.printJson({ id: taskId(path as string), ...result });
      return EXIT.OK;
    }
    const found = (result.found ?? []) as Array<[number, Buffer]>;
    for (const [nonce, hash] of found) ctx.print(`${nonce} ${hash.toString('hex')}`);
    ctx.note(`${found.length} found in ${String(result.hashes)} hashes`);
    return EXIT.OK;
  },
};

const benchCommand: CliCommand = {
  name: 'bench',
  usage: 'bench [NONCES] [--mode M] [--threads N] [--key KEY] [--next-key KEY] [--hex] [--no-wait]',
  summary: 'RandomX benchmark: hash NONCES 76-byte blobs (default 1000), report H/s and init time',
  help:
    `--key      build from this key (default: a fresh random key, so init is measured)\n` +
    `--next-key then switch to this key (fast mode), its dataset prepared in the background, and\n` +
    `           report the switch\n${HEX_HELP}\n${JOB_HELP}`,
  async run(ctx, args) {
    const { values, positionals } = ctx.parse(
      args,
      { ...bytesOption, ...jobOptionSpec, key: { type: 'string' }, 'next-key': { type: 'string' } },
      0,
      1,
    );
    const nonces = positionals.length > 0 ? intArg(positionals[0], 'NONCES', 0, UINT32_MAX) : 1000;
    const options = jobOptions(values);
    if (typeof values.key === 'string') {
      options.key = new Variant('ay', bytes(values.key, values.hex === true, 'KEY'));
    }
    if (typeof values['next-key'] === 'string') {
      options.next_key = new Variant('ay', bytes(values['next-key'], values.hex === true, 'KEY'));
    }
    const client = await ctx.connect();
    const [path] = await client.call(RANDOMX_PATH, RANDOMX_IFACE, 'Benchmark', 'ua{sv}', [
      nonces,
      options,
    ]);
    const result = await startOrFollow(ctx, path as string, values['no-wait'] === true);
    if (!result) return EXIT.OK;
    // Read right after the run: the share of the dataset the kernel backs with huge pages.
    const coverage = num(await client.get(RANDOMX_PATH, RANDOMX_IFACE, 'HugePageCoverage'));
    if (ctx.json) {
      ctx.printJson({ id: taskId(path as string), ...result, huge_page_coverage: coverage });
      return EXIT.OK;
    }
    const source = result.dataset_source === undefined ? '' : `, ${str(result.dataset_source)}`;
    ctx.print(
      `${str(result.mode)} mode, ${num(result.threads)} threads, ${num(result.nonces)} hashes: ` +
        `${num(result.hashrate).toFixed(1)} H/s; init ${num(result.init_seconds).toFixed(2)} s ` +
        `(cache ${num(result.cache_seconds).toFixed(2)} s, dataset ${num(result.dataset_seconds).toFixed(2)} s${source})`,
    );
    if (str(result.mode) === 'fast') {
      ctx.print(`huge pages: ${(coverage * 100).toFixed(1)}% of the dataset`);
    }
    if (result.switch_seconds !== undefined) {
      ctx.print(
        `next key: prepared in ${num(result.next_prepare_seconds).toFixed(1)} s while hashing, ` +
          `switch ${(num(result.switch_seconds) * 1000).toFixed(0)} ms, then ` +
          `${num(result.next_hashrate).toFixed(1)} H/s`,
      );
    }
    return EXIT.OK;
  },
};

export const commands: CliCommand[] = [hashCommand, hashBatchCommand, searchCommand, benchCommand];
