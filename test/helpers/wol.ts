import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MagicSender } from '../../src/wol/io';
import type { WolIo, WolLogger } from '../../src/wol/service';
import { startPrivateBus, type PrivateBus } from './bus';
import { TestClient, type SignalLog } from './client';
import { startDaemon, type DaemonProcess } from './daemon';
import { Lan } from './netns';
import { capture } from './pcap';

/**
 * The Wake-on-LAN end-to-end set-up shared by the tests and the benchmarks: vigild inside a
 * node's namespace of a test LAN (test/helpers/netns.ts), frames put on a wire by the injector
 * (test/wol/fixtures/inject.ts), sleeping hosts, config files and the frame counters.
 */

export const WOL_PATH = '/org/vigil/Vigil1/WakeOnLan';
export const WOL_IFACE = 'org.vigil.Vigil1.WakeOnLan';
export const HOST_IFACE = 'org.vigil.Vigil1.Host';

/** A logger that keeps everything to itself. */
export const quietLog: WolLogger = {
  info: () => {},
  warning: () => {},
  error: () => {},
  debug: () => {},
};

/**
 * The service's kernel parts with nothing behind them, for tests without a network: no
 * capture (as without CAP_NET_RAW), no pinger, and a sender whose sends do `send`.
 */
export function stubIo(send: () => Promise<void> = async () => {}): WolIo {
  return {
    canCapture: () => false,
    openCapture: () => {
      throw new Error('no capture in this test');
    },
    createSender: () =>
      ({ start: async () => {}, send, close: () => {} }) as unknown as MagicSender,
    createPinger: () => undefined,
  };
}

/** The frame injector (`node inject.js IFACE MODE ...`), run inside a node's namespace. */
export const INJECT = path.resolve(__dirname, '../wol/fixtures/inject.js');

/** Put raw Ethernet frames on `node`'s wire, in order. */
export function injectFrames(lan: Lan, node: string, frames: readonly Buffer[]): void {
  lan.exec(node, process.execPath, [
    INJECT,
    'eth0',
    'frames',
    ...frames.map((f) => f.toString('hex')),
  ]);
}

/**
 * A frame of the local experimental EtherType 0x88b5 from `source` to `destination` alone: a
 * sign of life nobody else hears (and nothing answers).
 */
export function unicastFrame(destination: Buffer, source: Buffer): Buffer {
  const frame = Buffer.alloc(60);
  destination.copy(frame, 0);
  source.copy(frame, 6);
  frame.writeUInt16BE(0x88b5, 12);
  return frame;
}

/** A host's NIC stays up but answers nothing, as a suspended machine's does. */
export function fallAsleep(lan: Lan, node: string): void {
  lan.exec(node, 'ip', ['addr', 'flush', 'dev', 'eth0']);
  lan.exec(node, 'ip', ['link', 'set', 'eth0', 'arp', 'off']);
  lan.setSysctl(node, 'net.ipv6.conf.eth0.disable_ipv6=1');
}

/** A node with IPv4 (a /24) and IPv6 on: its link-local address, and `ula` (a /64) if given. */
export function addDualStackNode(
  lan: Lan,
  node: { name: string; mac: string; ip: string; ula?: string },
): void {
  lan.addNode({
    name: node.name,
    mac: node.mac,
    cidr: `${node.ip}/24`,
    ipv6: true,
    cidr6: node.ula ? [`${node.ula}/64`] : [],
  });
}

/** A config file's text: `[section]` lines, each followed by its `key = value` lines. */
export function configText(sections: Record<string, Record<string, string | number>>): string {
  return Object.entries(sections)
    .flatMap(([name, values]) => [
      `[${name}]`,
      ...Object.entries(values).map(([key, value]) => `${key} = ${value}`),
    ])
    .join('\n');
}

/** vigild in `node`'s namespace with `config`, once it owns its name (`wrap`: e.g. setpriv). */
export function startVigil(
  lan: Lan,
  node: string,
  address: string,
  stateDir: string,
  config: string,
  wrap: string[] = [],
): Promise<DaemonProcess> {
  return startDaemon(address, {
    stateDir,
    prefix: ['ip', 'netns', 'exec', lan.node(node).netns, ...wrap],
    args: ['--config', config],
  });
}

export interface FrameCounters {
  readonly seen: number;
  readonly malformed: number;
}

/** The WakeOnLan object's FramesSeen and FramesMalformed. */
export async function frameCounters(client: TestClient): Promise<FrameCounters> {
  return {
    seen: Number(await client.get(WOL_PATH, WOL_IFACE, 'FramesSeen')),
    malformed: Number(await client.get(WOL_PATH, WOL_IFACE, 'FramesMalformed')),
  };
}

/** The counters once FramesSeen stops moving: the daemon has drained its capture ring. */
export async function settledCounters(client: TestClient): Promise<FrameCounters> {
  let now = await frameCounters(client);
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const next = await frameCounters(client);
    if (next.seen === now.seen) return now;
    now = next;
  }
}

/** What a flood injector says it sent. */
export interface FloodReport {
  readonly sent: number;
  readonly malformed: number;
}

/**
 * Run the injector in `node` (`args` after the interface, e.g. `flood COUNT SEED PER_MS`) and
 * call `whileRunning` over and over, 20 ms apart, until it exits: the daemon must keep
 * answering. Resolves with its exit code and report (none when it printed nothing).
 */
export async function flood(
  lan: Lan,
  node: string,
  args: readonly string[],
  whileRunning: () => Promise<void>,
): Promise<{ code: number | null; report: FloodReport | undefined }> {
  const child = lan.spawn(node, process.execPath, [INJECT, 'eth0', ...args]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  const done = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let finished = false;
  void done.then(() => (finished = true));
  while (!finished) {
    await whileRunning();
    await new Promise((r) => setTimeout(r, 20));
  }
  const code = await done;
  return { code, report: output ? (JSON.parse(output) as FloodReport) : undefined };
}

export interface WolScenarioOptions {
  /** The LAN with its nodes, vigild's among them; the scenario destroys it when it stops. */
  readonly lan: Lan;
  /** The prefix of the scenario's temporary directory. */
  readonly name: string;
  /** The config file's text. */
  readonly config: string;
  /** The node vigild runs in (default `watcher`). */
  readonly node?: string;
  /** The node whose wire tcpdump records into `pcapFile`, if any. */
  readonly captureOn?: string;
  /** Wrap vigild's command, e.g. `['setpriv', '--bounding-set=-net_raw']`. */
  readonly wrap?: string[];
}

/**
 * One end-to-end scenario: a temporary directory with the config file and the state, tcpdump
 * on one wire, a private dbus-daemon, vigild in the LAN, and a client subscribed to WakeSent.
 */
export interface WolScenario {
  readonly lan: Lan;
  readonly dir: string;
  readonly configFile: string;
  readonly stateDir: string;
  readonly pcapFile: string;
  readonly bus: PrivateBus;
  readonly client: TestClient;
  readonly wakeSignals: SignalLog;
  /** vigild as it runs now. */
  readonly daemon: DaemonProcess;
  /** Stop vigild (if it still runs) and start it again, on the same state and config. */
  restart(): Promise<DaemonProcess>;
  /** Stop everything, destroy the LAN and remove the files (kept with VIGIL_KEEP_TEST_FILES). */
  stop(): Promise<void>;
}

export async function startWolScenario(options: WolScenarioOptions): Promise<WolScenario> {
  const { lan } = options;
  const node = options.node ?? 'watcher';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), options.name));
  const configFile = path.join(dir, 'vigil.conf');
  const stateDir = path.join(dir, 'state');
  const pcapFile = path.join(dir, 'wire.pcap');
  fs.writeFileSync(configFile, options.config);
  let bus: PrivateBus | undefined;
  let daemon: DaemonProcess | undefined;
  let client: TestClient | undefined;
  const stop = async (): Promise<void> => {
    client?.close();
    await daemon?.stop();
    await bus?.stop();
    lan.destroy();
    if (!process.env.VIGIL_KEEP_TEST_FILES) fs.rmSync(dir, { recursive: true, force: true });
  };
  const start = (address: string): Promise<DaemonProcess> =>
    startVigil(lan, node, address, stateDir, configFile, options.wrap);
  try {
    if (options.captureOn) await capture(lan, options.captureOn, pcapFile);
    bus = await startPrivateBus();
    daemon = await start(bus.address);
    client = await TestClient.connect(bus.address);
    const wakeSignals = await client.subscribe({
      path: WOL_PATH,
      iface: WOL_IFACE,
      member: 'WakeSent',
    });
    const address = bus.address;
    return {
      lan,
      dir,
      configFile,
      stateDir,
      pcapFile,
      bus,
      client,
      wakeSignals,
      get daemon(): DaemonProcess {
        if (!daemon) throw new Error('vigild is not running');
        return daemon;
      },
      restart: async () => {
        await daemon?.stop();
        daemon = await start(address);
        return daemon;
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * One scenario for a whole test file, started in beforeAll on a LAN named `tag` that `build`
 * fills with nodes, and stopped in afterAll. Read its fields inside tests, not at module load.
 */
export function useWolScenario(
  tag: string,
  build: (lan: Lan) => Omit<WolScenarioOptions, 'lan'>,
): WolScenario {
  let lan: Lan | undefined;
  let scenario: WolScenario | undefined;
  beforeAll(async () => {
    lan = new Lan(tag);
    scenario = await startWolScenario({ ...build(lan), lan });
  }, 60000);
  afterAll(async () => {
    if (scenario) await scenario.stop();
    else lan?.destroy();
  });
  // Every field is read from the running scenario when the test reads it (restart() swaps vigild).
  return new Proxy({} as WolScenario, {
    get: (_, field) => {
      if (!scenario) throw new Error('the Wake-on-LAN scenario is not started yet');
      return Reflect.get(scenario, field) as unknown;
    },
  });
}
