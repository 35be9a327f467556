import { bind, type InterfaceSpec } from '../bus/interface';
import { escapePathElement, IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import type { ObjectServer } from '../bus/server';
import { usec } from '../bus/time';
import { unwrapDict, Variant } from '../bus/values';
import { invalidArgument } from '../core/errors';
import { HOST_OPTION_KEYS, readHostOptions, type HostOptions, type ListOption } from './config';
import type { WolService } from './service';
import type { WakeHistoryRow } from './store';
import type { Host } from './watcher';

export const WAKE_ON_LAN_PATH = `${ROOT_PATH}/WakeOnLan`;
export const HOSTS_PATH = `${ROOT_PATH}/Hosts`;

export const hostPath = (name: string): string => `${HOSTS_PATH}/${escapePathElement(name)}`;

const u64 = (n: number): bigint => BigInt(Math.max(0, Math.trunc(n)));

/** GetWakeHistory answers at most this many rows (0 asks for every row kept). */
export const MAX_WAKE_HISTORY_REPLY = 10_000;

/**
 * `org.vigil.Vigil1.WakeOnLan`, as DESIGN.md has it, plus `Available b` (false without
 * CAP_NET_RAW) and `FramesMalformed t`. The frame counters change with every frame, so they
 * are read on demand rather than announced.
 */
export const wakeOnLanInterface: InterfaceSpec<WolService> = {
  name: `${IFACE_PREFIX}WakeOnLan`,
  methods: [
    {
      name: 'AddHost',
      access: 'privileged',
      in: [
        ['name', 's'],
        ['mac', 's'],
        ['ip', 's'],
        ['options', 'a{sv}'],
      ],
      out: [['host', 'o']],
      handler: (svc, [name, mac, ip, options]) => {
        const host = svc.addHost(name as string, mac as string, ip as string, hostOptions(options));
        return hostPath(host.spec.name);
      },
    },
    {
      name: 'RemoveHost',
      access: 'privileged',
      in: [['name', 's']],
      out: [],
      handler: (svc, [name]) => {
        svc.removeHost(name as string);
      },
    },
    {
      name: 'Wake',
      access: 'privileged',
      in: [['name_or_mac', 's']],
      out: [],
      handler: (svc, [target]) => svc.wake(target as string),
    },
    {
      name: 'ListHosts',
      access: 'anyone',
      in: [],
      out: [['hosts', 'ao']],
      handler: (svc) => svc.listHosts().map((h) => hostPath(h.spec.name)),
    },
    {
      // Privileged, like reading the system journal: the history says which machine (IP and
      // MAC) tried to reach which host, and when. LastWakeReason stays public on each Host.
      name: 'GetWakeHistory',
      access: 'privileged',
      heavy: true,
      in: [['limit', 'u']],
      out: [['wakes', 'aa{sv}']],
      handler: (svc, [limit]) => {
        const n = Number(limit);
        if (n > MAX_WAKE_HISTORY_REPLY) {
          throw invalidArgument(`limit must be at most ${MAX_WAKE_HISTORY_REPLY} (0: all kept)`);
        }
        return svc.getWakeHistory(n === 0 ? MAX_WAKE_HISTORY_REPLY : n).map(wakeEntry);
      },
    },
  ],
  properties: [
    { name: 'Interfaces', type: 'as', get: (svc) => svc.interfaces, change: 'emits' },
    { name: 'FramesSeen', type: 't', get: (svc) => u64(svc.framesSeen), change: 'silent' },
    { name: 'WakesSent', type: 't', get: (svc) => u64(svc.wakesSent), change: 'emits' },
    { name: 'Available', type: 'b', get: (svc) => svc.available, change: 'emits' },
    {
      name: 'FramesMalformed',
      type: 't',
      get: (svc) => u64(svc.framesMalformed),
      change: 'silent',
    },
  ],
  signals: [
    {
      name: 'WakeSent',
      args: [
        ['name', 's'],
        ['mac', 's'],
        ['requester_ip', 's'],
        ['reason', 's'],
      ],
    },
  ],
};

/** One wake-history row as `a{sv}`; times in microseconds since the epoch. */
function wakeEntry(r: WakeHistoryRow): Record<string, Variant> {
  return {
    Id: new Variant('t', u64(r.id)),
    Time: new Variant('t', usec(r.time)),
    Host: new Variant('s', r.host),
    Mac: new Variant('s', r.mac),
    Interface: new Variant('s', r.interface),
    Trigger: new Variant('s', r.trigger),
    RequesterIp: new Variant('s', r.requesterIp),
    RequesterMac: new Variant('s', r.requesterMac),
    Outcome: new Variant('s', r.outcome),
    Count: new Variant('u', r.count),
    LastTime: new Variant('t', usec(r.lastTime)),
    AliveAfter: new Variant('t', u64(r.aliveAfter * 1000)),
  };
}

interface HostObject {
  readonly service: WolService;
  readonly host: Host;
}

/**
 * `org.vigil.Vigil1.Host`, as DESIGN.md has it, plus `LastWakeDuration t`: microseconds from
 * the last wake packet to the host's first sign of life (0 while unknown).
 */
export const hostInterface: InterfaceSpec<HostObject> = {
  name: `${IFACE_PREFIX}Host`,
  methods: [
    {
      name: 'Wake',
      access: 'privileged',
      in: [],
      out: [],
      handler: (obj) => obj.service.wake(obj.host.spec.name),
    },
  ],
  properties: [
    { name: 'Name', type: 's', get: (o) => o.host.spec.name, change: 'const' },
    { name: 'Mac', type: 's', get: (o) => o.host.spec.mac, change: 'const' },
    { name: 'Ip', type: 's', get: (o) => o.host.spec.ip, change: 'emits' },
    { name: 'Interface', type: 's', get: (o) => o.host.spec.interface, change: 'emits' },
    { name: 'State', type: 's', get: (o) => o.host.status.state, change: 'emits' },
    { name: 'LastSeen', type: 't', get: (o) => usec(o.host.status.lastSeen), change: 'emits' },
    { name: 'LastWake', type: 't', get: (o) => usec(o.host.status.lastWake), change: 'emits' },
    { name: 'WakeCount', type: 'u', get: (o) => o.host.status.wakeCount, change: 'emits' },
    {
      name: 'OnlyFrom',
      type: 'as',
      get: (o) => o.host.spec.onlyFrom.map((r) => r.text),
      change: 'emits',
    },
    { name: 'Timeout', type: 'u', get: (o) => o.host.spec.timeout, change: 'emits' },
    { name: 'Cooldown', type: 'u', get: (o) => o.host.spec.cooldown, change: 'emits' },
    {
      name: 'LastWakeDuration',
      type: 't',
      get: (o) => usec(o.host.status.lastWakeDuration),
      change: 'emits',
    },
    {
      name: 'LastWakeReason',
      type: 's',
      get: (o) => o.host.status.lastWakeReason,
      change: 'emits',
    },
    {
      name: 'IgnoreFrom',
      type: 'as',
      get: (o) => o.host.spec.ignoreFrom.map((r) => r.text),
      change: 'emits',
    },
    {
      name: 'Ip6',
      type: 'as',
      get: (o) => [...o.host.spec.ip6, ...o.host.status.learnedIp6],
      change: 'emits',
    },
    { name: 'Proxy', type: 'b', get: (o) => o.host.spec.proxy, change: 'emits' },
    {
      name: 'WakePorts',
      type: 'as',
      get: (o) => o.host.spec.wakePorts.map((p) => `${p.protocol}/${p.port}`),
      change: 'emits',
    },
    { name: 'Proxying', type: 'b', get: (o) => o.host.status.proxying, change: 'emits' },
  ],
  signals: [],
};

const OPTION_KEYS: readonly string[] = HOST_OPTION_KEYS;
/**
 * AddHost's `a{sv}`: interface s, timeout u, cooldown u, proxy b, and the lists only_from,
 * ignore_from, ip6, wake_ports (as, or one s of entries separated by commas or spaces).
 */
export function hostOptions(raw: unknown): HostOptions {
  const options = unwrapDict(raw);
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.includes(key)) {
      throw invalidArgument(`unknown option "${key}" (known: ${OPTION_KEYS.join(', ')})`);
    }
  }
  const typed =
    <T>(is: (v: unknown) => v is T, what: string) =>
    (key: string): T | undefined => {
      const v = options[key];
      if (v !== undefined && !is(v)) throw invalidArgument(`option "${key}" must be ${what}`);
      return v;
    };
  const isString = (v: unknown): v is string => typeof v === 'string';
  const isList = (v: unknown): v is ListOption =>
    isString(v) || (Array.isArray(v) && v.every(isString));
  const isWholeNumber = (v: unknown): v is number | bigint =>
    typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
  const wholeNumber = typed(isWholeNumber, 'an unsigned integer (seconds)');
  return readHostOptions({
    string: typed(isString, 'a string'),
    list: typed(isList, 'an array of strings'),
    boolean: typed((v): v is boolean => typeof v === 'boolean', 'a boolean'),
    seconds: (key) => {
      const n = wholeNumber(key);
      return n === undefined ? undefined : Number(n);
    },
  });
}

/** Export the WakeOnLan object and one Host object per host, and keep them in step. */
export function exportWakeOnLan(server: ObjectServer, service: WolService): void {
  server.export(WAKE_ON_LAN_PATH, [bind(wakeOnLanInterface, service)]);
  const exportHost = (host: Host): void => {
    server.export(hostPath(host.spec.name), [bind(hostInterface, { service, host })]);
  };
  for (const host of service.listHosts()) exportHost(host);
  service.on('hostAdded', exportHost);
  service.on('hostRemoved', (host) => server.unexport(hostPath(host.spec.name)));
  service.on('hostChanged', (host, props) =>
    server.propertiesChanged(hostPath(host.spec.name), hostInterface.name, props),
  );
  service.on('changed', (props) =>
    server.propertiesChanged(WAKE_ON_LAN_PATH, wakeOnLanInterface.name, props),
  );
  service.on('wakeSent', (e) =>
    server.signal(WAKE_ON_LAN_PATH, wakeOnLanInterface, 'WakeSent', [
      e.name,
      e.mac,
      e.requesterIp,
      e.reason,
    ]),
  );
}
