import { Variant } from '../bus/values';
import { IFACE_PREFIX, ROOT_PATH } from './client';
import { EXIT, intArg, UsageError, type CliCommand } from './command';
import { formatTime, num, str, type BusValue } from './values';

/** vigilctl's Wake-on-LAN commands: hosts, hosts add, hosts remove, wake. */

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
      ['NAME', 'MAC', 'IP', 'INTERFACE', 'STATE', 'LAST SEEN', 'LAST WAKE', 'WAKES', 'ONLY FROM'],
      hosts.map((h) => [
        str(h.Name),
        str(h.Mac),
        str(h.Ip),
        str(h.Interface),
        str(h.State),
        formatTime(h.LastSeen),
        formatTime(h.LastWake),
        String(num(h.WakeCount)),
        ((h.OnlyFrom ?? []) as string[]).join(',') || 'anyone',
      ]),
    );
    return EXIT.OK;
  },
};

const hostsAdd: CliCommand = {
  name: 'hosts add',
  usage: 'hosts add NAME MAC IP [--interface I] [--only-from IP,...] [--timeout S] [--cooldown S]',
  summary: 'watch a host and wake it when someone asks for its address (kept across restarts)',
  help:
    '--interface   the interface it is reached on (default: the one whose subnet holds IP)\n' +
    '--only-from   only wake for requests from these addresses or CIDR blocks\n' +
    '--timeout     seconds of silence before the host counts as offline (default 90)\n' +
    '--cooldown    seconds between two magic packets to it (default 10)',
  async run(ctx, args) {
    const { values, positionals } = ctx.parse(
      args,
      {
        interface: { type: 'string' },
        'only-from': { type: 'string' },
        timeout: { type: 'string' },
        cooldown: { type: 'string' },
      },
      3,
      3,
    );
    const [name, mac, ip] = positionals;
    const options: Record<string, Variant> = {};
    if (typeof values.interface === 'string')
      options.interface = new Variant('s', values.interface);
    if (typeof values['only-from'] === 'string') {
      const list = values['only-from'].split(',').map((s) => s.trim());
      if (list.some((s) => s === '')) throw new UsageError('--only-from has an empty entry');
      options.only_from = new Variant('as', list);
    }
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

export const commands: CliCommand[] = [hostsList, hostsAdd, hostsRemove, wake];
