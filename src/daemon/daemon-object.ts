import { bind } from '../bus/interface';
import { ROOT_PATH } from '../bus/names';
import type { CapabilityModule } from './capability';
import { daemonInterface } from './dbus';
import { VERSION } from './version';

/** The Daemon object at the root path (the ObjectManager lives there too). */
export const daemonObjectCapability: CapabilityModule = {
  name: 'daemon',
  interfaces: [daemonInterface],
  async setup({ server, reload, tasks }) {
    const info = {
      version: VERSION,
      startTime: Date.now(),
      reload: (why: string) => void reload(why),
      get degraded() {
        return tasks.degraded;
      },
    };
    server.export(ROOT_PATH, [bind(daemonInterface, info)]);
    tasks.on('degradedChanged', () =>
      server.propertiesChanged(ROOT_PATH, daemonInterface.name, ['Degraded']),
    );
    return { name: 'daemon' };
  },
};
