import type { IniSection } from '../core/ini';
import { invalidArgument } from '../core/errors';
import { log } from '../core/log';
import { settingChanges, type CapabilityModule } from '../daemon/capability';
import { interfaceForIp } from './addresses';
import { hostsFromConfig, parseYesNo, type ResolveEnvironment } from './config';
import { exportWakeOnLan, hostInterface, wakeOnLanInterface } from './dbus';
import { DEFAULT_WAKE_HISTORY_LIMIT, MAX_WAKE_HISTORY_LIMIT } from './history';

/**
 * `[wol]` settings: `interfaces` (spaces or commas), `ethernet_frame` (yes/no) and
 * `wake_history` (rows kept in the wake history).
 */
export function wolSettings(config: readonly IniSection[]): {
  interfaces: string[];
  ethernetFrame: boolean;
  wakeHistory: number;
} {
  const section = config.find((s) => s.name === 'wol');
  const history = section?.values.get('wake_history')?.trim();
  if (
    history !== undefined &&
    (!/^\d{1,9}$/.test(history) || Number(history) < 1 || Number(history) > MAX_WAKE_HISTORY_LIMIT)
  ) {
    throw invalidArgument(
      `[wol] wake_history must be a number of rows in 1..${MAX_WAKE_HISTORY_LIMIT}`,
    );
  }
  const ethernetFrame = section?.values.get('ethernet_frame');
  return {
    interfaces: (section?.values.get('interfaces') ?? '').split(/[\s,]+/).filter((s) => s !== ''),
    ethernetFrame: ethernetFrame !== undefined && parseYesNo(ethernetFrame, '[wol] ethernet_frame'),
    wakeHistory: history === undefined ? DEFAULT_WAKE_HISTORY_LIMIT : Number(history),
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
      wakeHistoryLimit: settings.wakeHistory,
    });
    exportWakeOnLan(ctx.server, service);
    await service.start();
    return {
      name: 'wake-on-lan',
      stop: async () => service.stop(),
      // Hosts apply live (a changed proxy setting hands back, the next tick takes over again);
      // the watched interfaces, the frame setting and the history size wait for a restart.
      reload: (next) => {
        // Everything is checked here: the step returned must not fail once the daemon applies it.
        const fresh = hostsFromConfig(next.config, next.configFile ?? 'config', env);
        const nextSettings = wolSettings(next.config);
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
            wake_history: s.wakeHistory,
          });
          return {
            applied: hosts.length ? [`[host:*] ${hosts.join(' ')}`] : [],
            needsRestart: settingChanges('wol', wolKeys(settings), wolKeys(nextSettings)),
          };
        };
      },
    };
  },
};
