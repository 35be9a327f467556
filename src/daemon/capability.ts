import type { InterfaceSpec } from '../bus/interface';
import type { ObjectServer } from '../bus/server';
import type { StateDatabase } from '../core/database';
import type { TaskManager } from '../tasks/manager';
import type { DaemonOptions } from './options';

/*
 * The contract between the composition root (src/daemon) and the capabilities. Capabilities
 * import it with `import type` only, so no import runs from a lower layer up to this one.
 */

/** What a capability gets to plug itself into the daemon. */
export interface DaemonContext {
  readonly server: ObjectServer;
  /** The job machinery every capability submits its long work to. */
  readonly tasks: TaskManager;
  readonly db: StateDatabase;
  /** The command line and every section of the config file; a capability reads its own. */
  readonly options: DaemonOptions;
  /** Call `listener` with the unique name of each bus client that leaves the bus. */
  onPeerGone(listener: (uniqueName: string) => void): void;
}

/** A running capability; `stop`, if any, releases its threads, sockets and native memory. */
export interface Capability {
  readonly name: string;
  stop?(): Promise<void>;
}

/**
 * One capability as the composition root lists it: the interface tables it serves and how it
 * sets itself up. Importing a module must load nothing native (`scripts/gen-introspection`
 * reads `interfaces` alone), so `setup` imports its engine, sockets or pools when it runs.
 */
export interface CapabilityModule {
  readonly name: string;
  readonly interfaces: readonly InterfaceSpec<never>[];
  setup(ctx: DaemonContext): Promise<Capability>;
}
