import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { formatIpv6, parseIpv6 } from '../../src/wol/addresses';

/**
 * A private Ethernet LAN made of network namespaces: one namespace holds a learning bridge
 * (the switch), every node gets its own namespace with an `eth0` veth cabled to it. Nothing
 * is ever connected to the machine's own interfaces, so test traffic cannot leave.
 */

export interface LanNode {
  readonly name: string;
  readonly netns: string;
  readonly mac: string;
  /** `a.b.c.d/len`, or none for a node that starts without an address (a sleeping host). */
  readonly cidr?: string;
  readonly ipv6: boolean;
}

export interface NodeSpec {
  readonly name: string;
  readonly mac: string;
  readonly cidr?: string;
  /**
   * Keep IPv6 on (off by default: router solicitations and DAD add frames most tests do not
   * expect). The node then has its EUI-64 link-local address, `linkLocal(mac)`.
   */
  readonly ipv6?: boolean;
  /** IPv6 addresses (`fd00::3/64`), added without duplicate address detection. */
  readonly cidr6?: readonly string[];
}

/** The EUI-64 link-local address the kernel gives an interface with this MAC. */
export function linkLocal(mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  const groups = [((b[0] ^ 2) << 8) | b[1], (b[2] << 8) | 0xff, 0xfe00 | b[3], (b[4] << 8) | b[5]];
  return formatIpv6(parseIpv6(`fe80:0:0:0:${groups.map((g) => g.toString(16)).join(':')}`)!);
}

function ip(args: string[], netns?: string): string {
  const argv = netns ? ['netns', 'exec', netns, 'ip', ...args] : args;
  return execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function canCreateNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export class Lan {
  readonly nodes = new Map<string, LanNode>();
  readonly switchNetns: string;
  private readonly children = new Set<ChildProcess>();

  /**
   * `tag` must be unique per run (include process.pid); namespace names derive from it.
   * `mldSnooping` makes the switch forward IPv6 multicast only to the ports that joined its
   * group, once some node acts as MLD querier (the bridge itself has no IPv6, so it does not).
   */
  constructor(
    readonly tag: string,
    options: { mldSnooping?: boolean } = {},
  ) {
    this.switchNetns = `${tag}-sw`;
    ip(['netns', 'add', this.switchNetns]);
    this.sysctl(this.switchNetns, 'net.ipv6.conf.all.disable_ipv6=1');
    // No multicast snooping unless asked: the Linux bridge would drop malformed IPv6 while
    // looking for MLD, where a plain switch passes every frame (the flood tests send such).
    ip(
      [
        'link',
        'add',
        'br0',
        'type',
        'bridge',
        'stp_state',
        '0',
        'forward_delay',
        '0',
        'mcast_snooping',
        options.mldSnooping ? '1' : '0',
      ],
      this.switchNetns,
    );
    ip(['link', 'set', 'br0', 'up'], this.switchNetns);
  }

  addNode(spec: NodeSpec): LanNode {
    const netns = `${this.tag}-${spec.name}`;
    const port = `p${this.nodes.size}`;
    ip(['netns', 'add', netns]);
    // No IPv6 unless asked: router solicitations and DAD would add frames the tests do not expect.
    const v6 = spec.ipv6 === true ? '0' : '1';
    this.sysctl(netns, `net.ipv6.conf.all.disable_ipv6=${v6}`);
    this.sysctl(netns, `net.ipv6.conf.default.disable_ipv6=${v6}`);
    ip(
      ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns],
      this.switchNetns,
    );
    ip(['link', 'set', port, 'master', 'br0', 'up'], this.switchNetns);
    ip(['link', 'set', 'eth0', 'address', spec.mac], netns);
    ip(['link', 'set', 'lo', 'up'], netns);
    ip(['link', 'set', 'eth0', 'up'], netns);
    if (spec.cidr) this.addAddress(netns, spec.cidr);
    for (const cidr of spec.cidr6 ?? []) this.addAddress(netns, cidr);
    const node: LanNode = {
      name: spec.name,
      netns,
      mac: spec.mac,
      cidr: spec.cidr,
      ipv6: spec.ipv6 === true,
    };
    this.nodes.set(spec.name, node);
    return node;
  }

  node(name: string): LanNode {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    return node;
  }

  /** Add an IPv4 (`a.b.c.d/len`) or IPv6 (`fd00::3/64`, without DAD) address to eth0. */
  addAddress(netnsOrNode: string, cidr: string): void {
    const netns = this.nodes.get(netnsOrNode)?.netns ?? netnsOrNode;
    if (cidr.includes(':')) ip(['-6', 'addr', 'add', cidr, 'dev', 'eth0', 'nodad'], netns);
    else ip(['addr', 'add', cidr, 'brd', '+', 'dev', 'eth0'], netns);
  }

  /** Set a sysctl inside a node's namespace, e.g. `net.ipv4.ip_forward=1`. */
  setSysctl(nodeName: string, setting: string): void {
    this.sysctl(this.node(nodeName).netns, setting);
  }

  /** Run a command inside a node's namespace and return its stdout. */
  exec(
    nodeName: string,
    command: string,
    args: readonly string[],
    input?: string | Buffer,
  ): string {
    return execFileSync('ip', ['netns', 'exec', this.node(nodeName).netns, command, ...args], {
      encoding: 'utf8',
      input,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
  }

  /** Start a long-running process inside a node's namespace; it is killed in destroy(). */
  spawn(
    nodeName: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions = {},
  ): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.node(nodeName).netns, command, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...options,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** The MAC a node's kernel has for `ip` on eth0 (ARP or NDP), or '' while it has none. */
  neighbour(nodeName: string, ip: string): string {
    const out = this.exec(nodeName, 'ip', [
      ip.includes(':') ? '-6' : '-4',
      'neigh',
      'show',
      'to',
      ip,
      'dev',
      'eth0',
    ]);
    return /lladdr ([0-9a-f:]{17})/.exec(out)?.[1] ?? '';
  }

  /** Forget the kernel's neighbour entries of a node, so its next packet ARPs again. */
  flushNeighbours(nodeName: string): void {
    ip(['neigh', 'flush', 'dev', 'eth0'], this.node(nodeName).netns);
  }

  destroy(): void {
    for (const child of this.children) child.kill('SIGKILL');
    this.children.clear();
    for (const node of this.nodes.values()) {
      try {
        ip(['netns', 'del', node.netns]);
      } catch {
        // already gone
      }
    }
    this.nodes.clear();
    try {
      ip(['netns', 'del', this.switchNetns]);
    } catch {
      // already gone
    }
  }

  private sysctl(netns: string, setting: string): void {
    execFileSync('ip', ['netns', 'exec', netns, 'sysctl', '-q', '-w', setting], {
      stdio: 'ignore',
    });
  }
}
