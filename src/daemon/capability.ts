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
  /** Re-read the config file and apply it (Daemon.Reload, SIGHUP); `why` goes to the log. */
  reload(why: string): ReloadOutcome;
}

/**
 * What a reload did, as lines for the log such as `[daemon] max_running 4 -> 2`: settings
 * applied while running, and settings that changed but take effect only after a restart.
 */
export interface ReloadOutcome {
  readonly applied: readonly string[];
  readonly needsRestart: readonly string[];
}

/** A capability's part of a reload, checked and ready: applying it can no longer be refused. */
export type ReloadStep = () => ReloadOutcome;

/** A running capability; `stop`, if any, releases its threads, sockets and native memory. */
export interface Capability {
  readonly name: string;
  stop?(): Promise<void>;
  /**
   * Check this capability's settings in a re-read config (`next`) and return how to apply
   * them, or throw a VigilError to refuse the whole config. It must change nothing itself:
   * the daemon applies the steps only once every capability has accepted.
   */
  reload?(next: DaemonOptions): ReloadStep;
}

/** `[section] key before -> after` for every key whose value differs (values compared as text). */
export function settingChanges(
  section: string,
  before: Readonly<Record<string, unknown>>,
  after: Readonly<Record<string, unknown>>,
): string[] {
  const text = (v: unknown): string => (v === undefined ? '(default)' : String(v));
  return Object.keys({ ...before, ...after })
    .filter((key) => text(before[key]) !== text(after[key]))
    .map((key) => `[${section}] ${key} ${text(before[key])} -> ${text(after[key])}`);
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
