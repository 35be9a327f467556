import { settingChanges, type CapabilityModule } from '../daemon/capability';
import { exportRandomData, randomDataInterface, type RandomDataService } from './dbus';
import { slowRandomKind } from './random';

/** The tutorial's RandomData object and its `slow-random` task kind. */
export const randomDataCapability: CapabilityModule = {
  name: 'randomdata',
  interfaces: [randomDataInterface],
  async setup({ server, tasks, options }) {
    tasks.registerKind(slowRandomKind);
    const service: RandomDataService = { manager: tasks, paceMs: options.slowPaceMs };
    exportRandomData(server, service);
    return {
      name: 'randomdata',
      // A new pace applies to slow() calls from now on; running ones keep theirs.
      reload: (next) => () => {
        const applied = settingChanges(
          'daemon',
          { slow_pace_ms: service.paceMs },
          { slow_pace_ms: next.slowPaceMs },
        );
        service.paceMs = next.slowPaceMs;
        return { applied, needsRestart: [] };
      },
    };
  },
};
