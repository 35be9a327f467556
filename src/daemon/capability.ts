import type { StateDatabase } from '../core/database';
import type { IniSection } from '../core/ini';
import type { ObjectServer } from '../bus/server';
import type { TaskManager } from '../tasks/manager';

/** What a capability (RandomX, Wake-on-LAN, ...) gets to plug itself into the daemon. */
export interface DaemonContext {
  readonly server: ObjectServer;
  readonly tasks: TaskManager;
  readonly db: StateDatabase;
  /** Every section of the config file; a capability reads its own. */
  readonly config: readonly IniSection[];
  readonly stateDir: string;
}

/** A running capability; `stop` releases its threads, sockets and native memory. */
export interface Capability {
  readonly name: string;
  stop(): Promise<void>;
}

export type CapabilitySetup = (ctx: DaemonContext) => Promise<Capability>;
