import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BusConnection, callBusDaemon, watchNameOwner } from '../../src/bus/connection';

/** A private dbus-daemon for one test file: never the machine's own buses. */
export interface PrivateBus {
  address: string;
  dir: string;
  stop(): Promise<void>;
}

/**
 * Write a session-bus config that listens on `dir`/bus and activates services from
 * `serviceDir` (and nothing else); returns its path.
 */
export function activatingBusConfig(dir: string, serviceDir: string): string {
  const file = path.join(dir, 'session.conf');
  fs.writeFileSync(
    file,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=${dir}/bus</listen>
  <servicedir>${serviceDir}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`,
  );
  return file;
}

/**
 * Start `dbus-daemon` with `configFile` (the session config by default) listening on a unix
 * socket in a fresh temporary directory (or on `listen`, a D-Bus address).
 */
export async function startPrivateBus(configFile?: string, listen?: string): Promise<PrivateBus> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bus-'));
  fs.chmodSync(dir, 0o755);
  const listenArg = `--address=${listen ?? `unix:path=${path.join(dir, 'bus')}`}`;
  const args = configFile
    ? [`--config-file=${configFile}`, listenArg, '--nofork', '--print-address=1']
    : ['--session', listenArg, '--nofork', '--print-address=1'];
  const child: ChildProcess = spawn('dbus-daemon', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(line.trim());
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`dbus-daemon exited with ${code}`)));
  });
  return {
    address,
    dir,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The pid of the process that owns `name` on `bus` (the bus daemon's own for org.freedesktop.DBus). */
export async function connectionPid(bus: BusConnection, name: string): Promise<number> {
  const reply = await callBusDaemon(bus, 'GetConnectionUnixProcessID', 's', [name]);
  return Number(reply.body[0]);
}

/**
 * The arguments of `gdbus call` for `method` (interface.member) on `objectPath` of vigil (or
 * of `destination`) on the bus at `address`, then `args` (gdbus's own text values).
 */
export function gdbusCallArgs(
  address: string,
  objectPath: string,
  method: string,
  args: readonly string[] = [],
  destination = 'org.vigil.Vigil1',
): string[] {
  return [
    'call',
    '--address',
    address,
    '--dest',
    destination,
    '--object-path',
    objectPath,
    '--method',
    method,
    ...args,
  ];
}

/** Whether process `pid` is `ancestor` or runs below it (read from /proc). */
function descendsFrom(pid: number, ancestor: number): boolean {
  for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
    if (p === ancestor) return true;
    try {
      p = Number(/^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * Resolve once `name` is owned on the bus at `address` (by process `pid` or one of its
 * descendants, when given, so an owner that is still leaving does not count; a wrapper such
 * as strace may have started it), the way a client knows a service is up:
 * NameOwnerChanged, and the owner's PID from the bus. Rejects when `exited` settles first (the
 * process died) or after `timeoutMs`, with `describe()` (e.g. the process's output).
 */
export async function waitForBusName(
  address: string,
  options: {
    name?: string;
    pid?: number;
    timeoutMs?: number;
    exited?: Promise<unknown>;
    describe?: () => string;
  } = {},
): Promise<void> {
  const name = options.name ?? 'org.vigil.Vigil1';
  const timeoutMs = options.timeoutMs ?? 20000;
  const describe = options.describe ?? (() => '');
  const bus = await BusConnection.open(address);
  let timer: NodeJS.Timeout | undefined;
  try {
    const ownedByIt = async (): Promise<boolean> => {
      try {
        const pid = await connectionPid(bus, name);
        return options.pid === undefined || descendsFrom(pid, options.pid);
      } catch {
        return false; // NameHasNoOwner: not yet
      }
    };
    let onOwned: () => void = () => undefined;
    const owned = new Promise<void>((resolve) => (onOwned = resolve));
    await watchNameOwner(bus, name, (owner) => {
      if (owner !== '') void ownedByIt().then((yes) => yes && onOwned());
    });
    if (await ownedByIt()) return;
    await Promise.race([
      owned,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${name} not owned within ${timeoutMs} ms:\n${describe()}`)),
          timeoutMs,
        );
      }),
      ...(options.exited
        ? [
            options.exited.then((code) => {
              throw new Error(`exited (${String(code)}) before owning ${name}:\n${describe()}`);
            }),
          ]
        : []),
    ]);
  } finally {
    clearTimeout(timer);
    bus.close();
  }
}
