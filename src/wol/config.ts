import fs from 'node:fs';
import { invalidArgument, isVigilError } from '../core/errors';
import type { IniSection } from '../core/ini';
import {
  interfaceForIp,
  normalizeHostIp,
  normalizeMac,
  parseAddressList,
  parseMac,
  formatMac,
  validateHostName,
  validateInterface,
} from './addresses';
import { validateTiming, type HostSpec } from './watcher';

/** wakeupd's default: a host is offline after 90 s of silence. */
export const DEFAULT_TIMEOUT = 90;
/** One magic packet per 10 s at most: a lost packet is retried while the requester keeps asking. */
export const DEFAULT_COOLDOWN = 10;

const HOST_KEYS = new Set(['ip', 'mac', 'interface', 'onlyfrom', 'timeout', 'cooldown']);

export interface HostOptions {
  readonly interface?: string;
  readonly onlyFrom?: readonly string[] | string;
  readonly timeout?: number;
  readonly cooldown?: number;
}

export interface ResolveEnvironment {
  /** `/etc/ethers` (MAC hostname lines) for hosts given without `mac`. */
  readonly ethersPath?: string;
  /** `/sys/class/net`, to check that interfaces exist. */
  readonly sysClassNet?: string;
  /** Finds the interface for a host given without one (default: the subnet holding its IP). */
  readonly interfaceForIp?: (ip: string) => string | undefined;
}

/** Validate and normalize one host definition (AddHost or a config section). */
export function makeHostSpec(
  name: string,
  mac: string,
  ip: string,
  options: HostOptions,
  source: HostSpec['source'],
  env: ResolveEnvironment = {},
): HostSpec {
  validateHostName(name);
  const normalizedMac = normalizeMac(mac);
  const normalizedIp = normalizeHostIp(ip);
  const onlyFrom =
    typeof options.onlyFrom === 'string'
      ? parseAddressList(options.onlyFrom)
      : (options.onlyFrom ?? []).flatMap((entry) => parseAddressList(entry));
  let iface = options.interface;
  if (iface === undefined || iface === '') {
    iface = (env.interfaceForIp ?? interfaceForIp)(normalizedIp);
    if (!iface) {
      throw invalidArgument(
        `no interface of this machine is on the subnet of ${normalizedIp}; give the interface`,
      );
    }
  }
  validateInterface(iface, env.sysClassNet);
  const timeout = options.timeout ?? DEFAULT_TIMEOUT;
  const cooldown = options.cooldown ?? DEFAULT_COOLDOWN;
  validateTiming(timeout, cooldown);
  return {
    name,
    mac: normalizedMac,
    ip: normalizedIp,
    interface: iface,
    onlyFrom,
    timeout,
    cooldown,
    source,
  };
}

/** Look `name` up in an ethers(5) file: `MAC hostname` per line, `#` comments. */
export function lookupEthers(name: string, ethersPath = '/etc/ethers'): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(ethersPath, 'utf8');
  } catch {
    return undefined;
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [macText, host] = line.split(/\s+/);
    if (host === name) {
      const mac = parseMac(macText ?? '');
      if (mac) return formatMac(mac);
    }
  }
  return undefined;
}

function seconds(section: IniSection, key: string): number | undefined {
  const text = section.values.get(key);
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text.trim())) throw invalidArgument(`${key} must be whole seconds`);
  return Number(text.trim());
}

export interface ConfigHosts {
  readonly hosts: HostSpec[];
  readonly warnings: string[];
}

/**
 * The `[host:NAME]` sections of a config file in wakeupd's format (other sections belong to
 * the rest of the daemon and are left alone). Any invalid host fails the whole file with
 * InvalidArgument naming the file and line, so a typo never silently unwatches a machine.
 */
export function hostsFromConfig(
  sections: readonly IniSection[],
  source = 'config',
  env: ResolveEnvironment = {},
): ConfigHosts {
  const hosts: HostSpec[] = [];
  const warnings: string[] = [];
  const names = new Set<string>();
  for (const section of sections) {
    const m = /^host:(.*)$/i.exec(section.name);
    if (!m) continue;
    const name = m[1].trim();
    const where = `${source}:${section.line}: [${section.name}]`;
    try {
      if (names.has(name)) throw invalidArgument(`host "${name}" is defined twice`);
      names.add(name);
      for (const key of section.values.keys()) {
        if (!HOST_KEYS.has(key)) warnings.push(`${where}: unknown key "${key}" ignored`);
      }
      const ip = section.values.get('ip');
      if (!ip) throw invalidArgument('"ip" is missing');
      let mac = section.values.get('mac');
      if (!mac) {
        mac = lookupEthers(name, env.ethersPath);
        if (!mac) {
          throw invalidArgument(
            `"mac" is missing and "${name}" is not in ${env.ethersPath ?? '/etc/ethers'}`,
          );
        }
      }
      hosts.push(
        makeHostSpec(
          name,
          mac,
          ip,
          {
            interface: section.values.get('interface'),
            onlyFrom: section.values.get('onlyfrom'),
            timeout: seconds(section, 'timeout'),
            cooldown: seconds(section, 'cooldown'),
          },
          'config',
          env,
        ),
      );
    } catch (e) {
      if (isVigilError(e) && e.code === 'InvalidArgument') {
        throw invalidArgument(`${where}: ${e.message}`);
      }
      throw e;
    }
  }
  return { hosts, warnings };
}
