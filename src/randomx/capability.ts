import { VigilError } from '../core/errors';
import type { IniSection } from '../core/ini';
import type { CapabilityModule } from '../daemon/capability';
import { exportRandomX, randomXInterface } from './dbus';
import type { EngineOptions } from './engine';
import { randomxKinds } from './kinds';
import { checkMode } from './validate';

/** `[randomx]` settings: `threads` (default: CPUs), `mode` (light|fast), `large_pages` (yes|no). */
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
  return options;
}

/** RandomX: the engine (its pool starts on first use), its task kinds and its bus object. */
export const randomxCapability: CapabilityModule = {
  name: 'randomx',
  interfaces: [randomXInterface],
  async setup({ server, tasks, options }) {
    // Loaded here, not at the top: the engine brings koffi and piscina with it.
    const { RandomXEngine } = await import('./engine');
    const engine = new RandomXEngine(randomxSettings(options.config));
    for (const kind of randomxKinds(engine)) tasks.registerKind(kind);
    exportRandomX(server, { engine, manager: tasks });
    return { name: 'randomx', stop: () => engine.close() };
  },
};
