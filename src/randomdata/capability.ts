import type { CapabilityModule } from '../daemon/capability';
import { exportRandomData, randomDataInterface } from './dbus';
import { slowRandomKind } from './random';

/** The tutorial's RandomData object and its `slow-random` task kind. */
export const randomDataCapability: CapabilityModule = {
  name: 'randomdata',
  interfaces: [randomDataInterface],
  async setup({ server, tasks, options }) {
    tasks.registerKind(slowRandomKind);
    exportRandomData(server, { manager: tasks, paceMs: options.slowPaceMs });
    return { name: 'randomdata' };
  },
};
