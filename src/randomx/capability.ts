import { VigilError } from '../core/errors';
import type { IniSection } from '../core/ini';
import { settingChanges, type CapabilityModule } from '../daemon/capability';
import { exportRandomX, randomXInterface } from './dbus';
import type { EngineOptions } from './engine';
import { randomxKinds } from './kinds';
import { checkMode } from './validate';

/**
 * `[randomx]` settings: `threads` (default: CPUs), `mode` (light|fast), `large_pages` (yes|no)
 * and `dataset_cache` (how many built datasets the cache directory keeps; 0 keeps none).
 */
export function randomxSettings(config: readonly IniSection[]): EngineOptions {
  const section = config.find((s) => s.name === 'randomx')?.values;
  const options: EngineOptions = {};
  const threads = section?.get('threads');
  if (threads !== undefined && threads.trim() !== '') {
    const n = Number(threads);
    if (!Number.isInteger(n) || n < 1) {
      throw new VigilError('InvalidArgument', `[randomx] threads must be a positive integer`);
    }
    options.threads = n;
  }
  const mode = section?.get('mode');
  if (mode !== undefined && mode.trim() !== '') options.defaultMode = checkMode(mode.trim());
  const largePages = section?.get('large_pages');
  if (largePages !== undefined) options.largePages = !/^(0|no|false|off)$/i.test(largePages.trim());
  const keep = section?.get('dataset_cache');
  if (keep !== undefined && keep.trim() !== '') {
    const n = Number(keep);
    if (!Number.isInteger(n) || n < 0) {
      throw new VigilError('InvalidArgument', `[randomx] dataset_cache must be a count (0 = off)`);
    }
    options.datasetCache = n;
  }
  return options;
}

/** The settings under the names the config file gives them. */
const fileKeys = (o: EngineOptions): Record<string, unknown> => ({
  mode: o.defaultMode,
  threads: o.threads,
  large_pages: o.largePages,
  dataset_cache: o.datasetCache,
});

/** RandomX: the engine (its pool starts on first use), its task kinds and its bus object. */
export const randomxCapability: CapabilityModule = {
  name: 'randomx',
  interfaces: [randomXInterface],
  async setup({ server, tasks, options }) {
    // Loaded here, not at the top: the engine brings koffi and piscina with it.
    const { RandomXEngine } = await import('./engine');
    const settings = randomxSettings(options.config);
    const engine = new RandomXEngine({ ...settings, cacheDir: options.cacheDir });
    for (const kind of randomxKinds(engine)) tasks.registerKind(kind);
    exportRandomX(server, { engine, manager: tasks });
    return {
      name: 'randomx',
      stop: () => engine.close(),
      // Mode and Threads are const properties and the pool is sized at start, so a reload
      // checks the section (a bad value refuses the config) and reports what waits for a restart.
      reload: (next) => {
        const changes = settingChanges(
          'randomx',
          fileKeys(settings),
          fileKeys(randomxSettings(next.config)),
        );
        return () => ({ applied: [], needsRestart: changes });
      },
    };
  },
};
