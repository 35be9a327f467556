import {
  type BusConnection,
  claimName,
  connectBus,
  describeBus,
  onPeerGone,
  releaseName,
  watchConnection,
} from '../bus/connection';
import { BUS_NAME, ROOT_PATH } from '../bus/names';
import { ObjectServer } from '../bus/server';
import { openStateDatabase, type StateDatabase } from '../core/database';
import { isVigilError, messageOf, VigilError } from '../core/errors';
import type { IniSection } from '../core/ini';
import { log, setLogLevel } from '../core/log';
import { TaskHistory } from '../tasks/history';
import { TaskManager, type TaskLimits } from '../tasks/manager';
import {
  settingChanges,
  type Capability,
  type CapabilityModule,
  type DaemonContext,
  type ReloadOutcome,
  type ReloadStep,
} from './capability';
import { ConfigReadError, parseDaemonOptions, type DaemonOptions } from './options';
import { VERSION } from './version';

const taskLimits = (o: DaemonOptions): TaskLimits => ({
  maxRunning: o.maxRunning,
  retentionMs: o.retentionMs,
  maxQueuedPerUser: o.maxQueuedPerUser,
  maxQueuedTotal: o.maxQueuedTotal,
  retainedPerUser: o.retainedPerUser,
  retainedTotal: o.retainedTotal,
  historyLimit: o.historyLimit,
  historyMaxBytes: o.historyMaxBytes,
});

/** `[section] key` for every key outside the host sections whose text differs. */
function changedKeys(before: readonly IniSection[], after: readonly IniSection[]): string[] {
  const flat = (sections: readonly IniSection[]): Map<string, string> =>
    new Map(
      sections
        .filter((sec) => !/^host:/i.test(sec.name))
        .flatMap((sec) => [...sec.values].map(([k, v]) => [`[${sec.name}] ${k}`, v] as const)),
    );
  const [a, b] = [flat(before), flat(after)];
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
}

/** The task limits as the config file names them, for the reload log. */
const taskLimitKeys = (o: DaemonOptions): Record<string, number> => ({
  max_running: o.maxRunning,
  retention_seconds: o.retentionMs / 1000,
  max_queued_per_user: o.maxQueuedPerUser,
  max_queued_total: o.maxQueuedTotal,
  retained_per_user: o.retainedPerUser,
  retained_total: o.retainedTotal,
  history_limit: o.historyLimit,
  history_max_bytes: o.historyMaxBytes,
});

/** Shutdown budget: SIGTERM to exit within 5 s, with room to spare. */
const SHUTDOWN_MS = 4000;

/**
 * The whole service: the state database, the task queue and the bus connection that every
 * capability shares, then the capabilities themselves, set up in the order given.
 */
export class Daemon {
  private bus: BusConnection | undefined;
  private db: StateDatabase | undefined;
  private tasks: TaskManager | undefined;
  private server: ObjectServer | undefined;
  private capabilities: Capability[] = [];
  /** The options at start; `options` follows reloads. */
  private readonly startedWith: DaemonOptions;

  constructor(
    private options: DaemonOptions,
    private readonly modules: readonly CapabilityModule[],
    private readonly onBusLost: (reason: string) => void,
  ) {
    this.startedWith = options;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.db = openStateDatabase(o.stateDir);
    this.tasks = new TaskManager({ ...taskLimits(o), history: new TaskHistory(this.db) });

    this.bus = await connectBus(o.bus, 5000, {
      // Nothing a peer sends may stop the daemon: whatever goes wrong with one message is logged
      // with its sender, and the daemon goes on.
      onInternalError: (e, h) =>
        log.error(
          `error handling ${h.interface ?? ''}.${h.member ?? ''} from ${h.sender ?? '?'}: ` +
            (e instanceof Error ? (e.stack ?? e.message) : String(e)),
        ),
    });
    watchConnection(this.bus, this.onBusLost);
    const server = new ObjectServer(this.bus, ROOT_PATH);
    this.server = server;
    const peerGone = new Set<(name: string) => void>();
    await onPeerGone(this.bus, (name) => {
      server.peerGone(name);
      for (const listener of peerGone) listener(name);
    });

    const ctx: DaemonContext = {
      server,
      tasks: this.tasks,
      db: this.db,
      options: o,
      onPeerGone: (listener) => peerGone.add(listener),
      reload: (why) => this.reload(why),
    };
    for (const module of this.modules) this.capabilities.push(await module.setup(ctx));

    // Recover after every kind is registered, and claim the name last, so that a client
    // activated by the name finds every object in place.
    this.tasks.recover();
    await claimName(this.bus, BUS_NAME);
    log.notice(
      `vigil ${VERSION} owns ${BUS_NAME} on ${describeBus(o.bus)}; state in ${o.stateDir}`,
    );
  }

  /**
   * Re-read the config file (with the same command line, which still wins) and apply it
   * without dropping tasks or bus objects. The whole config is refused, with a VigilError and
   * nothing changed, when it cannot be read or parsed or any capability refuses its part:
   * every part is checked before any is applied. Synchronous, so two reloads never interleave.
   */
  reload(why: string): ReloadOutcome {
    const file = this.options.configFile;
    try {
      let next: DaemonOptions;
      try {
        next = parseDaemonOptions([...this.options.argv]);
      } catch (e) {
        const code = e instanceof ConfigReadError ? 'Failed' : 'InvalidArgument';
        throw new VigilError(code, messageOf(e));
      }
      const steps: ReloadStep[] = [this.reloadCore(next)];
      for (const c of this.capabilities) {
        try {
          if (c.reload) steps.push(c.reload(next));
        } catch (e) {
          if (isVigilError(e)) throw e;
          throw new VigilError('Failed', `${c.name}: ${messageOf(e)}`);
        }
      }
      const outcomes = steps.map((apply) => apply());
      const applied = outcomes.flatMap((o) => o.applied);
      const needsRestart = outcomes.flatMap((o) => o.needsRestart);
      // Any other changed key (one no part reloads, say a new setting) is not applied either.
      const told = (label: string): boolean =>
        [...applied, ...needsRestart].some((line) => line.startsWith(`${label} `));
      for (const label of changedKeys(this.options.config, next.config)) {
        if (!told(label)) needsRestart.push(`${label} changed`);
      }
      this.options = next;
      const source = file ?? 'no config file (started without --config)';
      log.notice(
        `reload (${why}): ${source}: ${applied.length ? `applied ${applied.join('; ')}` : 'nothing to apply'}`,
      );
      if (needsRestart.length) {
        log.warning(`reload: needs restart (systemctl restart vigild): ${needsRestart.join('; ')}`);
      }
      return { applied, needsRestart };
    } catch (e) {
      log.error(`reload (${why}) refused, the running config stays: ${messageOf(e)}`);
      throw e;
    }
  }

  /** The daemon's own settings: log level and task limits apply live, the state directory not. */
  private reloadCore(next: DaemonOptions): ReloadStep {
    const before = this.options;
    return () => {
      this.tasks?.configure(taskLimits(next));
      if (next.logLevel !== before.logLevel) setLogLevel(next.logLevel);
      const live = (o: DaemonOptions): Record<string, unknown> => ({
        log_level: o.logLevel,
        ...taskLimitKeys(o),
      });
      return {
        applied: settingChanges('daemon', live(before), live(next)),
        // Against what the daemon started with: that is what runs until a restart.
        needsRestart: settingChanges(
          'daemon',
          { state_dir: this.startedWith.stateDir },
          { state_dir: next.stateDir },
        ),
      };
    };
  }

  /** Stop taking calls, record running tasks, release the name and every resource. */
  async stop(): Promise<void> {
    const deadline = Date.now() + SHUTDOWN_MS;
    const left = (): number => Math.max(0, deadline - Date.now());
    await this.server?.drain(Math.min(500, left()));
    await this.tasks?.shutdown(Math.min(1500, left()));
    for (const c of this.capabilities.reverse()) {
      if (!c.stop) continue;
      try {
        await Promise.race([c.stop(), new Promise((r) => setTimeout(r, left()).unref())]);
      } catch (e) {
        log.error(`stopping ${c.name}: ${messageOf(e)}`);
      }
    }
    if (this.bus) {
      try {
        await Promise.race([
          releaseName(this.bus, BUS_NAME),
          new Promise((r) => setTimeout(r, Math.min(500, left())).unref()),
        ]);
      } catch {
        // The bus may already be gone; the name goes with the connection anyway.
      }
      this.bus.close();
    }
    this.db?.close();
  }
}
