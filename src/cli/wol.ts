import { Variant } from '../bus/values';
import { IFACE_PREFIX, ROOT_PATH } from './client';
import { EXIT, intArg, UsageError, type CliCommand } from './command';
import { formatDuration, formatTime, num, str, unwrapDict, type BusValue } from './values';

/** vigilctl's Wake-on-LAN commands: hosts, hosts add, hosts remove, wake, wakes. */

const WOL_PATH = `${ROOT_PATH}/WakeOnLan`;
const WOL_IFACE = `${IFACE_PREFIX}WakeOnLan`;
const HOST_IFACE = `${IFACE_PREFIX}Host`;
const UINT32_MAX = 2 ** 32 - 1;

const hostsList: CliCommand = {
  name: 'hosts',
  usage: 'hosts',
  summary: 'the Wake-on-LAN hosts and their state (online, offline, waking, unknown)',
  async run(ctx, args) {
    ctx.parse(args, {}, 0, 0);
    const client = await ctx.connect();
    const watcher = await client.getAll(WOL_PATH, WOL_IFACE);
    const [paths] = await client.call(WOL_PATH, WOL_IFACE, 'ListHosts');
    const hosts: Record<string, BusValue>[] = [];
    for (const path of (paths ?? []) as string[]) {
      hosts.push({ path, ...(await client.getAll(path, HOST_IFACE)) });
    }
    if (ctx.json) {
      ctx.printJson({ ...watcher, hosts });
      return EXIT.OK;
    }
    if (watcher.Available === false) {
      ctx.note('note: the watcher is unavailable (no CAP_NET_RAW): nothing is woken automatically');
    }
    ctx.printTable(
      [
        'NAME',
        'MAC',
        'IP',
        'INTERFACE',
        'STATE',
        'PROXY',
        'LAST SEEN',
        'LAST WAKE',
        'REASON',
        'WAKES',
        'ONLY FROM',
      ],
      hosts.map((h) => [
        str(h.Name),
        str(h.Mac),
        [str(h.Ip), ...((h.Ip6 ?? []) as string[])].join(','),
        str(h.Interface),
        str(h.State),
        h.Proxying === true ? 'proxying' : h.Proxy === true ? 'on' : 'off',
        formatTime(h.LastSeen),
        formatTime(h.LastWake),
        str(h.LastWakeReason) || '-',
        String(num(h.WakeCount)),
        ((h.OnlyFrom ?? []) as string[]).join(',') || 'anyone',
      ]),
    );
    return EXIT.OK;
  },
};

const hostsAdd: CliCommand = {
  name: 'hosts add',
  usage:
    'hosts add NAME MAC IP [--interface I] [--ip6 A,...] [--only-from IP,...] [--ignore-from IP,...]' +
    ' [--timeout S] [--cooldown S] [--proxy] [--wake-ports P,...]',
  summary: 'watch a host and wake it when someone asks for its address (kept across restarts)',
  help:
    '--interface    the interface it is reached on (default: the one whose subnet holds IP)\n' +
    '--ip6          its IPv6 addresses (more are learned from its traffic)\n' +
    '--only-from    only wake for requests from these addresses or CIDR blocks (IPv4, IPv6)\n' +
    '--ignore-from  never wake for requests from these (e.g. the router)\n' +
    '--timeout      seconds of silence before the host counts as offline (default 90)\n' +
    '--cooldown     seconds between two magic packets to it (default 10)\n' +
    '--proxy        answer ARP/NS for it while it sleeps; wake it only for traffic (see README)\n' +
    '--wake-ports   with --proxy: the ports that wake it, 22, tcp/22, udp/51820 (default: any)',
  async run(ctx, args) {
    const { values, positionals } = ctx.parse(
      args,
      {
        interface: { type: 'string' },
        'only-from': { type: 'string' },
        timeout: { type: 'string' },
        cooldown: { type: 'string' },
        ip6: { type: 'string' },
        'ignore-from': { type: 'string' },
        proxy: { type: 'boolean' },
        'wake-ports': { type: 'string' },
      },
      3,
      3,
    );
    const [name, mac, ip] = positionals;
    const options: Record<string, Variant> = {};
    if (typeof values.interface === 'string')
      options.interface = new Variant('s', values.interface);
    const lists: [string, string][] = [
      ['only-from', 'only_from'],
      ['ignore-from', 'ignore_from'],
      ['ip6', 'ip6'],
      ['wake-ports', 'wake_ports'],
    ];
    for (const [flag, option] of lists) {
      const value = values[flag];
      if (typeof value !== 'string') continue;
      const list = value.split(',').map((s) => s.trim());
      if (list.some((s) => s === '')) throw new UsageError(`--${flag} has an empty entry`);
      options[option] = new Variant('as', list);
    }
    if (values.proxy === true) options.proxy = new Variant('b', true);
    if (typeof values.timeout === 'string') {
      options.timeout = new Variant('u', intArg(values.timeout, '--timeout', 1, UINT32_MAX));
    }
    if (typeof values.cooldown === 'string') {
      options.cooldown = new Variant('u', intArg(values.cooldown, '--cooldown', 0, UINT32_MAX));
    }
    const client = await ctx.connect();
    const [path] = await client.call(WOL_PATH, WOL_IFACE, 'AddHost', 'sssa{sv}', [
      name,
      mac,
      ip,
      options,
    ]);
    if (ctx.json) ctx.printJson({ name, path });
    else ctx.print(String(path));
    return EXIT.OK;
  },
};

const hostsRemove: CliCommand = {
  name: 'hosts remove',
  usage: 'hosts remove NAME',
  summary: 'stop watching a host added with hosts add',
  async run(ctx, args) {
    const { positionals } = ctx.parse(args, {}, 1, 1);
    const client = await ctx.connect();
    await client.call(WOL_PATH, WOL_IFACE, 'RemoveHost', 's', [positionals[0]]);
    if (ctx.json) ctx.printJson({ removed: positionals[0] });
    return EXIT.OK;
  },
};

const wake: CliCommand = {
  name: 'wake',
  usage: 'wake NAME|MAC',
  summary: 'send a magic packet to a watched host, or to any MAC on the watched interfaces',
  async run(ctx, args) {
    const { positionals } = ctx.parse(args, {}, 1, 1);
    const client = await ctx.connect();
    await client.call(WOL_PATH, WOL_IFACE, 'Wake', 's', [positionals[0]]);
    if (ctx.json) ctx.printJson({ woken: positionals[0] });
    else ctx.print(`magic packet sent to ${positionals[0]}`);
    return EXIT.OK;
  },
};

const wakes: CliCommand = {
  name: 'wakes',
  usage: 'wakes [--host NAME] [--limit N]',
  summary: 'the wake history: who asked for which host, and what vigil did (newest first)',
  help:
    '--host   only this host\n' +
    '--limit  at most N entries (default 20; 0: every entry kept)\n' +
    'OUTCOME is woke, cooldown, not-allowed (only_from), ignored (ignore_from) or\n' +
    'port-not-listed (wake_ports); ×N is N identical requests folded into one entry.',
  async run(ctx, args) {
    const { values } = ctx.parse(
      args,
      { host: { type: 'string' }, limit: { type: 'string' } },
      0,
      0,
    );
    const limit =
      typeof values.limit === 'string' ? intArg(values.limit, '--limit', 0, 10_000) : 20;
    const host = typeof values.host === 'string' ? values.host : undefined;
    const client = await ctx.connect();
    // The method has no host filter: with one, read every entry kept and filter here.
    const [records] = await client.call(WOL_PATH, WOL_IFACE, 'GetWakeHistory', 'u', [
      host === undefined ? limit : 0,
    ]);
    let rows = ((records ?? []) as unknown[]).map(unwrapDict);
    if (host !== undefined) {
      rows = rows.filter((r) => r.Host === host);
      if (limit > 0) rows = rows.slice(0, limit);
    }
    if (ctx.json) {
      ctx.printJson(rows);
      return EXIT.OK;
    }
    ctx.printTable(
      ['TIME', 'HOST', 'TRIGGER', 'REQUESTER', 'REQUESTER MAC', 'OUTCOME', 'AWAKE AFTER'],
      rows.map((r) => [
        formatTime(r.Time),
        str(r.Host),
        str(r.Trigger),
        str(r.RequesterIp) || '-',
        str(r.RequesterMac) || '-',
        str(r.Outcome) + (num(r.Count) > 1 ? ` ×${num(r.Count)}` : ''),
        num(r.AliveAfter) > 0 ? formatDuration(num(r.AliveAfter) / 1e6) : '-',
      ]),
    );
    return EXIT.OK;
  },
};

export const commands: CliCommand[] = [hostsList, hostsAdd, hostsRemove, wake, wakes];
