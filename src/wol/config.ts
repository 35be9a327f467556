import fs from 'node:fs';
import { invalidArgument, isVigilError } from '../core/errors';
import type { IniSection } from '../core/ini';
import {
  interfaceForIp,
  normalizeHostIp,
  normalizeHostIp6,
  normalizeMac,
  parseAddressRange,
  parseMac,
  formatMac,
  splitList,
  validateHostName,
  validateInterface,
  type AddressRange,
} from './addresses';
import { validateTiming, type HostSpec, type WakePort } from './watcher';

/** wakeupd's default: a host is offline after 90 s of silence. */
export const DEFAULT_TIMEOUT = 90;
/** One magic packet per 10 s at most: a lost packet is retried while the requester keeps asking. */
export const DEFAULT_COOLDOWN = 10;

/** AddHost's option names; the config file takes them too (with wakeupd's `onlyfrom`). */
export const HOST_OPTION_KEYS = [
  'interface',
  'only_from',
  'timeout',
  'cooldown',
  'ip6',
  'proxy',
  'wake_ports',
  'ignore_from',
] as const;

const HOST_KEYS = new Set<string>(['ip', 'mac', 'onlyfrom', ...HOST_OPTION_KEYS]);

/** Configured IPv6 addresses per host (learned ones are capped apart). */
export const MAX_IP6 = 16;
/** Entries of `only_from`, `ignore_from` and `wake_ports`. */
export const MAX_LIST = 64;

/** A list option: an array, or one string of entries separated by commas and/or spaces. */
export type ListOption = readonly string[] | string;

export interface HostOptions {
  readonly interface?: string;
  readonly onlyFrom?: ListOption;
  readonly timeout?: number;
  readonly cooldown?: number;
  readonly ip6?: ListOption;
  readonly proxy?: boolean;
  readonly wakePorts?: ListOption;
  readonly ignoreFrom?: ListOption;
}

/**
 * Where host options are read from, by kind: a config section's text, or AddHost's `a{sv}`.
 * Each returns undefined for an option not given and throws InvalidArgument, naming the
 * option, for a value that is not of its kind.
 */
export interface HostOptionReader {
  string(key: string): string | undefined;
  list(key: string): ListOption | undefined;
  seconds(key: string): number | undefined;
  boolean(key: string): boolean | undefined;
}

/** Every host option, read by its name (HOST_OPTION_KEYS) and kind. */
export function readHostOptions(read: HostOptionReader): HostOptions {
  return {
    interface: read.string('interface'),
    onlyFrom: read.list('only_from'),
    timeout: read.seconds('timeout'),
    cooldown: read.seconds('cooldown'),
    ip6: read.list('ip6'),
    proxy: read.boolean('proxy'),
    wakePorts: read.list('wake_ports'),
    ignoreFrom: read.list('ignore_from'),
  };
}

/** The entries of a list option, checked one by one; errors name the option. */
function listOption<T>(
  option: string,
  value: ListOption | undefined,
  max: number,
  parse: (entry: string) => T,
): T[] {
  const entries = typeof value === 'string' ? splitList(value) : (value ?? []).flatMap(splitList);
  if (entries.length > max) throw invalidArgument(`${option}: at most ${max} entries`);
  return entries.map((entry) => {
    try {
      return parse(entry);
    } catch (e) {
      if (isVigilError(e)) throw invalidArgument(`${option}: ${e.message}`);
      throw e;
    }
  });
}

const PORT = /^(?:(tcp|udp)\/)?(\d{1,5})$/i;

/** `22` or `tcp/22` (TCP), `udp/51820`. */
export function parseWakePort(text: string): WakePort {
  const m = PORT.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw invalidArgument(`invalid port "${text}" (expected PORT, tcp/PORT or udp/PORT; 1-65535)`);
  }
  return { protocol: (m[1]?.toLowerCase() ?? 'tcp') as 'tcp' | 'udp', port };
}

export const formatWakePort = (p: WakePort): string => `${p.protocol}/${p.port}`;

const unique = <T>(items: T[], key: (t: T) => string): T[] => [
  ...new Map(items.map((i) => [key(i), i])).values(),
];

const ranges = (option: string, value: ListOption | undefined): AddressRange[] =>
  unique(listOption(option, value, MAX_LIST, parseAddressRange), (r) => r.text);

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
  const onlyFrom = ranges('only_from', options.onlyFrom);
  const ignoreFrom = ranges('ignore_from', options.ignoreFrom);
  const ip6 = [...new Set(listOption('ip6', options.ip6, MAX_IP6, normalizeHostIp6))];
  const wakePorts = unique(
    listOption('wake_ports', options.wakePorts, MAX_LIST, parseWakePort),
    formatWakePort,
  );
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
    ip6,
    interface: iface,
    onlyFrom,
    ignoreFrom,
    timeout,
    cooldown,
    proxy: options.proxy ?? false,
    wakePorts,
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

/** A config file's host options: text, `yes`/`no`, whole seconds (wakeupd's `onlyfrom` too). */
function sectionReader(section: IniSection): HostOptionReader {
  const text = (key: string): string | undefined => section.values.get(key);
  return {
    string: text,
    list: (key) => (key === 'only_from' ? (text('onlyfrom') ?? text(key)) : text(key)),
    seconds: (key) => {
      const value = text(key)?.trim();
      if (value !== undefined && !/^\d{1,9}$/.test(value)) {
        throw invalidArgument(`${key} must be whole seconds`);
      }
      return value === undefined ? undefined : Number(value);
    },
    boolean: (key) => {
      const value = text(key);
      return value === undefined ? undefined : parseYesNo(value, key);
    },
  };
}

/** `yes`/`no` as the config file spells it (also 1/0, true/false, on/off). */
export function parseYesNo(text: string, key: string): boolean {
  const value = text.trim().toLowerCase();
  if (['1', 'yes', 'true', 'on'].includes(value)) return true;
  if (['0', 'no', 'false', 'off'].includes(value)) return false;
  throw invalidArgument(`${key} must be yes or no`);
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
      const options = readHostOptions(sectionReader(section));
      hosts.push(makeHostSpec(name, mac, ip, options, 'config', env));
    } catch (e) {
      if (isVigilError(e) && e.code === 'InvalidArgument') {
        throw invalidArgument(`${where}: ${e.message}`);
      }
      throw e;
    }
  }
  return { hosts, warnings };
}
