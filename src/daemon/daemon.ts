import type { MessageBus } from '@particle/dbus-next';
import { claimName, connectBus, describeBus, onPeerGone, watchConnection } from '../bus/connection';
import { bind, type InterfaceSpec } from '../bus/interface';
import { BUS_NAME, IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import { ObjectServer } from '../bus/server';
import { usec } from '../bus/time';
import { openStateDatabase, type StateDatabase } from '../core/database';
import { messageOf } from '../core/errors';
import { log } from '../core/log';
import { exportRandomData } from '../randomdata/dbus';
import { slowRandomKind } from '../randomdata/random';
import { exportTasks } from '../tasks/dbus';
import { TaskHistory } from '../tasks/history';
import { TaskManager } from '../tasks/manager';
import type { Capability, CapabilitySetup } from './capability';
import type { DaemonOptions } from './options';
import { VERSION } from './version';

export interface DaemonInfo {
  version: string;
  startTime: number;
}

export const daemonInterface: InterfaceSpec<DaemonInfo> = {
  name: `${IFACE_PREFIX}Daemon`,
  methods: [],
  properties: [
    { name: 'Version', type: 's', get: (d) => d.version, emitsChange: false },
    { name: 'StartTime', type: 't', get: (d) => usec(d.startTime), emitsChange: false },
  ],
  signals: [],
};

/** Shutdown budget: SIGTERM to exit within 5 s, with room to spare. */
const SHUTDOWN_MS = 4000;

/** The whole service: state database, task queue, bus objects and capabilities. */
export class Daemon {
  private bus: MessageBus | undefined;
  private db: StateDatabase | undefined;
  private tasks: TaskManager | undefined;
  private server: ObjectServer | undefined;
  private capabilities: Capability[] = [];

  constructor(
    private readonly options: DaemonOptions,
    private readonly setups: readonly CapabilitySetup[],
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
    this.tasks.registerKind(slowRandomKind);

    this.bus = await connectBus(o.bus);
    watchConnection(this.bus, this.onBusLost);
    const server = new ObjectServer(this.bus, ROOT_PATH);
    this.server = server;
    await onPeerGone(this.bus, (name) => server.callers.forget(name));

    server.export(ROOT_PATH, [bind(daemonInterface, { version: VERSION, startTime: Date.now() })]);
    exportTasks(server, this.tasks);
    exportRandomData(server, { manager: this.tasks, paceMs: o.slowPaceMs });
    const ctx = {
      server,
      tasks: this.tasks,
      db: this.db,
      config: o.config,
      stateDir: o.stateDir,
    };
    for (const setup of this.setups) this.capabilities.push(await setup(ctx));

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
      try {
        await Promise.race([c.stop(), new Promise((r) => setTimeout(r, left()).unref())]);
      } catch (e) {
        log.error(`stopping ${c.name}: ${messageOf(e)}`);
      }
    }
    if (this.bus) {
      try {
        await Promise.race([
          this.bus.releaseName(BUS_NAME),
          new Promise((r) => setTimeout(r, Math.min(500, left())).unref()),
        ]);
      } catch {
        // The bus may already be gone; the name goes with the connection anyway.
      }
      this.bus.disconnect();
    }
    this.db?.close();
  }
}
