import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BusTarget } from '../bus/connection';
import { messageOf } from '../core/errors';
import { parseIni, type IniSection } from '../core/ini';
import { LOG_LEVELS } from '../core/log';
import {
  DEFAULT_HISTORY_LIMIT,
  DEFAULT_HISTORY_MAX_BYTES,
  DEFAULT_MAX_QUEUED_TOTAL,
  DEFAULT_RETAINED_PER_USER,
  DEFAULT_RETAINED_TOTAL,
} from '../tasks/manager';

export interface DaemonOptions {
  /** The command line these were parsed from: a reload re-reads the file under the same one. */
  argv: readonly string[];
  bus: BusTarget;
  configFile: string | undefined;
  stateDir: string;
  /** Where rebuildable data (RandomX datasets) is kept. */
  cacheDir: string;
  logLevel: string;
  slowPaceMs: number;
  maxRunning: number;
  retentionMs: number;
  maxQueuedPerUser: number;
  maxQueuedTotal: number;
  retainedPerUser: number;
  retainedTotal: number;
  historyLimit: number;
  historyMaxBytes: number;
  /** Every section of the config file, for the capabilities to read their own. */
  config: IniSection[];
}

export const USAGE = `Usage: vigild [--session | --system | --bus ADDRESS] [options]

  --session            use the session bus (default)
  --system             use the system bus
  --bus ADDRESS        use the bus at ADDRESS (e.g. unix:path=/run/x)
  --config FILE        read settings and [host:NAME] sections from FILE
  --state-dir DIR      keep the task history and hosts in DIR
  --cache-dir DIR      keep built RandomX datasets in DIR
  --log-level LEVEL    ${LOG_LEVELS.join(', ')} (default info)
  --slow-pace-ms MS    interval between the bits of RandomData.slow (default 1000)
  --max-running N      tasks running at once (default: number of CPUs)
  --help               show this help
`;

export class UsageError extends Error {}

/** The config file could not be read at all (as opposed to read and found wrong). */
export class ConfigReadError extends UsageError {}

function positiveInt(value: string | undefined, what: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what} must be a positive integer`);
  return n;
}

/** Parse the command line and the config file; the command line wins over the file. */
export function parseDaemonOptions(argv: string[], env = process.env): DaemonOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      session: { type: 'boolean' },
      system: { type: 'boolean' },
      bus: { type: 'string' },
      config: { type: 'string' },
      'state-dir': { type: 'string' },
      'cache-dir': { type: 'string' },
      'log-level': { type: 'string' },
      'slow-pace-ms': { type: 'string' },
      'max-running': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) throw new UsageError(USAGE);
  const chosen = [values.session, values.system, values.bus !== undefined].filter(Boolean);
  if (chosen.length > 1) throw new UsageError('choose one of --session, --system and --bus');
  const bus: BusTarget = values.system
    ? { kind: 'system' }
    : values.bus !== undefined
      ? { kind: 'address', address: values.bus }
      : { kind: 'session' };

  let config: IniSection[] = [];
  if (values.config !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(values.config, 'utf8');
    } catch (e) {
      throw new ConfigReadError(`cannot read config ${values.config}: ${messageOf(e)}`);
    }
    try {
      config = parseIni(text, values.config);
    } catch (e) {
      throw new UsageError(messageOf(e));
    }
  }
  const daemon = config.find((s) => s.name === 'daemon')?.values ?? new Map<string, string>();

  const logLevel = values['log-level'] ?? daemon.get('log_level') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    const where = values['log-level'] !== undefined ? '--log-level' : '[daemon] log_level';
    throw new UsageError(`${where} must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const stateDir = values['state-dir'] ?? daemon.get('state_dir') ?? defaultStateDir(bus, env);
  return {
    argv: [...argv],
    bus,
    configFile: values.config,
    stateDir,
    cacheDir: values['cache-dir'] ?? defaultCacheDir(bus, env),
    logLevel,
    slowPaceMs: positiveInt(
      values['slow-pace-ms'] ?? daemon.get('slow_pace_ms'),
      'slow pace',
      1000,
    ),
    maxRunning: positiveInt(
      values['max-running'] ?? daemon.get('max_running'),
      'max running',
      Math.max(1, os.availableParallelism()),
    ),
    retentionMs: positiveInt(daemon.get('retention_seconds'), 'retention_seconds', 600) * 1000,
    maxQueuedPerUser: positiveInt(daemon.get('max_queued_per_user'), 'max_queued_per_user', 64),
    maxQueuedTotal: positiveInt(
      daemon.get('max_queued_total'),
      'max_queued_total',
      DEFAULT_MAX_QUEUED_TOTAL,
    ),
    retainedPerUser: positiveInt(
      daemon.get('retained_per_user'),
      'retained_per_user',
      DEFAULT_RETAINED_PER_USER,
    ),
    retainedTotal: positiveInt(
      daemon.get('retained_total'),
      'retained_total',
      DEFAULT_RETAINED_TOTAL,
    ),
    historyLimit: positiveInt(daemon.get('history_limit'), 'history_limit', DEFAULT_HISTORY_LIMIT),
    historyMaxBytes: positiveInt(
      daemon.get('history_max_bytes'),
      'history_max_bytes',
      DEFAULT_HISTORY_MAX_BYTES,
    ),
    config,
  };
}

/** Where state lives when not given: /var/lib/vigil for the system bus, XDG state otherwise. */
export function defaultStateDir(bus: BusTarget, env: NodeJS.ProcessEnv): string {
  if (bus.kind === 'system') return '/var/lib/vigil';
  const base = env.XDG_STATE_HOME || path.join(env.HOME || os.homedir(), '.local', 'state');
  return path.join(base, 'vigil');
}

/**
 * Where the cache lives when not given: systemd's CacheDirectory= ($CACHE_DIRECTORY), else
 * /var/cache/vigil for the system bus and the XDG cache directory otherwise.
 */
export function defaultCacheDir(bus: BusTarget, env: NodeJS.ProcessEnv): string {
  if (env.CACHE_DIRECTORY) return env.CACHE_DIRECTORY.split(':')[0];
  if (bus.kind === 'system') return '/var/cache/vigil';
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'vigil');
}
