import type { IniSection } from '../core/ini';
import { log } from '../core/log';
import { settingChanges, type CapabilityModule } from '../daemon/capability';
import { interfaceForIp } from './addresses';
import { hostsFromConfig, type ResolveEnvironment } from './config';
import { exportWakeOnLan, hostInterface, wakeOnLanInterface } from './dbus';

function yes(value: string | undefined): boolean {
  return value !== undefined && /^(1|yes|true|on)$/i.test(value.trim());
}

/** `[wol]` settings: `interfaces` (spaces or commas) and `ethernet_frame` (yes/no). */
export function wolSettings(config: readonly IniSection[]): {
  interfaces: string[];
  ethernetFrame: boolean;
} {
  const section = config.find((s) => s.name === 'wol');
  return {
    interfaces: (section?.values.get('interfaces') ?? '').split(/[\s,]+/).filter((s) => s !== ''),
    ethernetFrame: yes(section?.values.get('ethernet_frame')),
  };
}

/** Wake-on-LAN: config hosts, persisted hosts, the watcher and the bus objects. */
export const wakeOnLanCapability: CapabilityModule = {
  name: 'wake-on-lan',
  interfaces: [wakeOnLanInterface, hostInterface],
  setup: async (ctx) => {
    // Loaded here, not at the top: the service brings the capture and raw-socket addons.
    const { WolService } = await import('./service');
    const settings = wolSettings(ctx.options.config);
    const configured = settings.interfaces;
    const env: ResolveEnvironment = {
      // A host given without an interface is on the one whose subnet holds its address, or on
      // the only watched interface.
      interfaceForIp: (ip) => {
        const bySubnet = interfaceForIp(ip);
        if (bySubnet && (configured.length === 0 || configured.includes(bySubnet))) return bySubnet;
        return configured.length === 1 ? configured[0] : undefined;
      },
    };
    const { hosts, warnings } = hostsFromConfig(ctx.options.config, 'config', env);
    for (const w of warnings) log.warning(w);
    const service = new WolService({
      log,
      configHosts: hosts,
      db: ctx.db,
      sendEthernetFrame: settings.ethernetFrame,
      interfaces: configured,
      env,
    });
    exportWakeOnLan(ctx.server, service);
    await service.start();
    return {
      name: 'wake-on-lan',
      stop: async () => service.stop(),
      // Hosts apply live; the watched interfaces and the frame setting wait for a restart.
      reload: (next) => {
        const fresh = hostsFromConfig(next.config, next.configFile ?? 'config', env);
        const apply = service.prepareConfigHosts(fresh.hosts);
        return () => {
          for (const w of fresh.warnings) log.warning(w);
          const { added, removed, changed } = apply();
          const hosts = [
            ...added.map((n) => `+${n}`),
            ...removed.map((n) => `-${n}`),
            ...changed.map((n) => `~${n}`),
          ];
          const wolKeys = (s: typeof settings): Record<string, unknown> => ({
            interfaces: s.interfaces.join(' '),
            ethernet_frame: s.ethernetFrame ? 'yes' : 'no',
          });
          return {
            applied: hosts.length ? [`[host:*] ${hosts.join(' ')}`] : [],
            needsRestart: settingChanges(
              'wol',
              wolKeys(settings),
              wolKeys(wolSettings(next.config)),
            ),
          };
        };
      },
    };
  },
};
