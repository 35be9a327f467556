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
import { messageOf } from '../core/errors';
import { log } from '../core/log';
import { TaskHistory } from '../tasks/history';
import { TaskManager } from '../tasks/manager';
import type { Capability, CapabilityModule, DaemonContext } from './capability';
import type { DaemonOptions } from './options';
import { VERSION } from './version';

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

  constructor(
    private readonly options: DaemonOptions,
    private readonly modules: readonly CapabilityModule[],
    private readonly onBusLost: (reason: string) => void,
  ) {}

  async start(): Promise<void> {
    const o = this.options;
    this.db = openStateDatabase(o.stateDir);
    this.tasks = new TaskManager({
      maxRunning: o.maxRunning,
      retentionMs: o.retentionMs,
      maxQueuedPerUser: o.maxQueuedPerUser,
      historyLimit: o.historyLimit,
      history: new TaskHistory(this.db),
    });

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
    await onPeerGone(this.bus, (name) => server.callers.forget(name));

    const ctx: DaemonContext = { server, tasks: this.tasks, db: this.db, options: o };
    for (const module of this.modules) this.capabilities.push(await module.setup(ctx));

    // Recover after every kind is registered, and claim the name last, so that a client
    // activated by the name finds every object in place.
    this.tasks.recover();
    await claimName(this.bus, BUS_NAME);
    log.notice(
      `vigil ${VERSION} owns ${BUS_NAME} on ${describeBus(o.bus)}; state in ${o.stateDir}`,
    );
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
