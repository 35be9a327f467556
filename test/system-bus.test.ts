import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { startDaemon, tempStateDir, type DaemonProcess } from './helpers/daemon';
import { gdbusCallAs, runAs, type GdbusReply as Reply } from './helpers/gdbus';
import { Lan } from './helpers/netns';

// The system-bus access control, both layers, seen from clients nobody here wrote (gdbus,
// dbus-send) running as other UIDs through setpriv:
// - a private dbus-daemon from services/test-system-bus.conf, which includes the shipped policy;
// - the same bus with the policy overridden to allow everything, where vigild's own caller
//   checks must answer instead.
// vigild runs inside a network namespace of its own, so Wake sends its magic packets onto a
// test LAN and nowhere else.

const REPO = path.resolve(__dirname, '..', '..');
const SYSTEM_BUS_CONF = path.join(REPO, 'services', 'test-system-bus.conf');
const SYSUSERS = path.join(REPO, 'systemd', 'vigil.sysusers');
const NAME = 'org.vigil.Vigil1';
const ROOT = '/org/vigil/Vigil1';
const NOBODY = 65534;

const POLICY_DENIED = 'org.freedesktop.DBus.Error.AccessDenied';
const DAEMON_DENIED = 'org.vigil.Vigil1.Error.AccessDenied';

/** A GVariant byte array of exactly these bytes (gdbus's b'...' would add a NUL). */
const bytes = (data: string | Buffer): string =>
  `[${[...Buffer.from(data)].map((b) => `byte 0x${b.toString(16).padStart(2, '0')}`).join(', ')}]`;
const KEY = bytes('test key 000');
const INPUT = bytes('This is a test');
const BLOB = bytes(Buffer.alloc(76));

const call = gdbusCallAs;

function expectSuccess(reply: Reply): string {
  if (!reply.ok) throw new Error(`call failed: ${reply.stderr}`);
  return reply.out;
}

/** The object path out of gdbus's `(objectpath '/org/...',)`. */
const objectPathOf = (out: string): string => /objectpath '([^']+)'/.exec(out)?.[1] ?? '';

/** The vigil user and group, made by the project's own sysusers.d entry as an install would. */
function vigilAccount(): { uid: number; gid: number } {
  execFileSync('systemd-sysusers', [SYSUSERS]);
  const passwd = execFileSync('getent', ['passwd', 'vigil'], { encoding: 'utf8' }).split(':');
  return { uid: Number(passwd[2]), gid: Number(passwd[3]) };
}

const NOBODY_ID = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];

/** Every privileged member, called with arguments the daemon would otherwise accept. */
function privilegedCalls(hostPath: string): [string, string, string[]][] {
  return [
    ['RandomX.Hash', `${ROOT}/RandomX`, [KEY, INPUT]],
    ['RandomX.HashBatch', `${ROOT}/RandomX`, [KEY, `[${bytes('a')}, ${bytes('b')}]`, '{}']],
    ['RandomX.Search', `${ROOT}/RandomX`, [KEY, BLOB, '39', '1', "{'count': <uint32 4>}"]],
    ['RandomX.Benchmark', `${ROOT}/RandomX`, ['4', '{}']],
    [
      'WakeOnLan.AddHost',
      `${ROOT}/WakeOnLan`,
      ['intruder', '02:00:00:00:00:66', '10.77.0.66', "{'interface': <'eth0'>}"],
    ],
    ['WakeOnLan.RemoveHost', `${ROOT}/WakeOnLan`, ['sleeper']],
    ['WakeOnLan.Wake', `${ROOT}/WakeOnLan`, ['sleeper']],
    ['WakeOnLan.GetWakeHistory', `${ROOT}/WakeOnLan`, ['10']],
    ['Host.Wake', hostPath, []],
    ['Daemon.Reload', ROOT, []],
  ];
}

/** Wait until the daemon's output matches (its pipe is read only while the test awaits). */
async function waitForOutput(daemon: DaemonProcess, pattern: RegExp): Promise<string> {
  for (let i = 0; i < 500 && !pattern.test(daemon.output()); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(daemon.output()).toMatch(pattern);
  return daemon.output();
}

let markers = 0;
/**
 * Everything the daemon logged up to now: root adds and removes a host, whose log line comes
 * after anything logged for earlier calls, and waits for that line.
 */
async function outputSoFar(address: string, daemon: DaemonProcess): Promise<string> {
  const name = `marker${++markers}`;
  const mac = `02:00:00:00:01:${markers.toString(16).padStart(2, '0')}`;
  const wol = `${ROOT}/WakeOnLan`;
  expectSuccess(
    call(
      address,
      [],
      wol,
      `${NAME}.WakeOnLan.AddHost`,
      name,
      mac,
      `10.77.0.${100 + markers}`,
      "{'interface': <'eth0'>}",
    ),
  );
  expectSuccess(call(address, [], wol, `${NAME}.WakeOnLan.RemoveHost`, name));
  return waitForOutput(daemon, new RegExp(`watching ${name} `));
}

describe('vigild on a bus that mimics the system bus', () => {
  let lan: Lan;
  let account: { uid: number; gid: number };
  let memberId: string[];
  let vigilId: string[];
  const buses: PrivateBus[] = [];
  const daemons: DaemonProcess[] = [];
  const tempDirs: string[] = [];

  /** vigild as root (unless `identity` says otherwise) in the LAN's daemon namespace. */
  async function daemonOn(bus: PrivateBus, identity: string[] = []): Promise<DaemonProcess> {
    const stateDir = tempStateDir();
    tempDirs.push(stateDir);
    if (identity.length > 0) fs.chownSync(stateDir, account.uid, account.gid);
    const daemon = await startDaemon(bus.address, {
      stateDir,
      prefix: [
        'ip',
        'netns',
        'exec',
        lan.node('daemon').netns,
        ...(identity.length ? ['setpriv', ...identity] : []),
      ],
      args: ['--slow-pace-ms', '1000'],
    });
    daemons.push(daemon);
    return daemon;
  }

  async function busFrom(config: string): Promise<PrivateBus> {
    const bus = await startPrivateBus(config);
    buses.push(bus);
    return bus;
  }

  /** The same system-bus config with a mandatory policy that lets anyone call anything. */
  function permissiveConfig(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-permissive-'));
    tempDirs.push(dir);
    const file = path.join(dir, 'permissive.conf');
    fs.writeFileSync(
      file,
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>${SYSTEM_BUS_CONF}</include>
  <policy context="mandatory">
    <allow send_destination="${NAME}"/>
  </policy>
</busconfig>
`,
    );
    return file;
  }

  /** Add the host "sleeper" as root, so RemoveHost/Wake/Host.Wake have a real target. */
  function addSleeper(address: string): string {
    return objectPathOf(
      expectSuccess(
        call(
          address,
          [],
          `${ROOT}/WakeOnLan`,
          `${NAME}.WakeOnLan.AddHost`,
          'sleeper',
          '02:00:00:00:00:09',
          '10.77.0.9',
          "{'interface': <'eth0'>}",
        ),
      ),
    );
  }

  beforeAll(() => {
    account = vigilAccount();
    memberId = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, `--groups=${account.gid}`];
    vigilId = [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups'];
    lan = new Lan(`vsb${process.pid}`);
    lan.addNode({ name: 'daemon', mac: '02:00:00:00:00:01', cidr: '10.77.0.1/24' });
    lan.addNode({ name: 'sleeper', mac: '02:00:00:00:00:09' });
  });

  afterAll(async () => {
    for (const daemon of daemons) await daemon.stop();
    for (const bus of buses) await bus.stop();
    lan?.destroy();
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('with the shipped policy', () => {
    let bus: PrivateBus;
    let daemon: DaemonProcess;
    let sleeperPath: string;

    beforeAll(async () => {
      bus = await busFrom(SYSTEM_BUS_CONF);
      daemon = await daemonOn(bus);
      sleeperPath = addSleeper(bus.address);
    });

    test('an unprivileged UID may introspect, read properties, list objects and call quick', () => {
      const xml = expectSuccess(
        runAs(NOBODY_ID, 'gdbus', [
          'introspect',
          '--address',
          bus.address,
          '--dest',
          NAME,
          '--object-path',
          ROOT,
        ]),
      );
      expect(xml).toContain('interface org.vigil.Vigil1.Daemon');
      const version = expectSuccess(
        call(
          bus.address,
          NOBODY_ID,
          ROOT,
          'org.freedesktop.DBus.Properties.Get',
          `${NAME}.Daemon`,
          'Version',
        ),
      );
      expect(version).toMatch(/^\(<'.+'>,\)$/);
      const objects = expectSuccess(
        call(bus.address, NOBODY_ID, ROOT, 'org.freedesktop.DBus.ObjectManager.GetManagedObjects'),
      );
      expect(objects).toContain(sleeperPath);
      const quick = expectSuccess(
        call(bus.address, NOBODY_ID, `${ROOT}/RandomData`, `${NAME}.RandomData.quick`, '32'),
      );
      expect(Number(/'(\d+)'/.exec(quick)?.[1])).toBeLessThan(2 ** 32);
      expectSuccess(call(bus.address, NOBODY_ID, `${ROOT}/Tasks`, `${NAME}.TaskManager.ListTasks`));
      expectSuccess(
        call(bus.address, NOBODY_ID, `${ROOT}/Tasks`, `${NAME}.TaskManager.GetHistory`, '5'),
      );
      expect(
        expectSuccess(
          call(bus.address, NOBODY_ID, `${ROOT}/WakeOnLan`, `${NAME}.WakeOnLan.ListHosts`),
        ),
      ).toContain(sleeperPath);
    });

    test('the policy refuses every privileged member, and Properties.Set, to an unprivileged UID', async () => {
      for (const [member, objectPath, args] of privilegedCalls(sleeperPath)) {
        const reply = call(bus.address, NOBODY_ID, objectPath, `${NAME}.${member}`, ...args);
        expect({ member, error: reply.error }).toEqual({ member, error: POLICY_DENIED });
      }
      const set = call(
        bus.address,
        NOBODY_ID,
        `${ROOT}/Tasks`,
        'org.freedesktop.DBus.Properties.Set',
        `${NAME}.TaskManager`,
        'MaxRunning',
        '<uint32 1>',
      );
      expect(set.error).toBe(POLICY_DENIED);
      // The daemon never saw these calls: the bus refused them.
      expect(await outputSoFar(bus.address, daemon)).not.toContain(`uid ${NOBODY}`);
      // And nothing happened: the host is still there, nobody's host was not added.
      const hosts = expectSuccess(
        call(bus.address, [], `${ROOT}/WakeOnLan`, `${NAME}.WakeOnLan.ListHosts`),
      );
      expect(hosts).toContain(sleeperPath);
      expect(hosts).not.toContain('intruder');
    });

    test("the daemon refuses to let one user cancel or pause another user's task", () => {
      const rootTask = objectPathOf(
        expectSuccess(
          call(bus.address, [], `${ROOT}/RandomData`, `${NAME}.RandomData.slow`, '64'),
        ).replace(/^\('([^']+)',\)$/, `(objectpath '${ROOT}/Tasks/$1',)`),
      );
      for (const method of ['Cancel', 'Pause']) {
        const reply = call(bus.address, NOBODY_ID, rootTask, `${NAME}.Task.${method}`);
        expect({ method, error: reply.error }).toEqual({ method, error: DAEMON_DENIED });
      }
      const state = expectSuccess(
        call(
          bus.address,
          NOBODY_ID,
          rootTask,
          'org.freedesktop.DBus.Properties.Get',
          `${NAME}.Task`,
          'State',
        ),
      );
      expect(state).toContain("'running'");

      // A user's own task is theirs to cancel; root may cancel anyone's.
      const ownId = /'([^']+)'/.exec(
        expectSuccess(
          call(bus.address, NOBODY_ID, `${ROOT}/RandomData`, `${NAME}.RandomData.slow`, '64'),
        ),
      )?.[1];
      expectSuccess(call(bus.address, NOBODY_ID, `${ROOT}/Tasks/${ownId}`, `${NAME}.Task.Cancel`));
      expectSuccess(call(bus.address, [], rootTask, `${NAME}.Task.Cancel`));
    });

    test('a member of the group vigil may hash, start jobs, manage hosts and wake them', () => {
      const hash = expectSuccess(
        call(bus.address, memberId, `${ROOT}/RandomX`, `${NAME}.RandomX.Hash`, KEY, INPUT),
      );
      const bytes = [...hash.matchAll(/0x([0-9a-f]{2})/g)].map((m) => m[1]).join('');
      expect(bytes).toBe('639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f');

      const search = objectPathOf(
        expectSuccess(
          call(
            bus.address,
            memberId,
            `${ROOT}/RandomX`,
            `${NAME}.RandomX.Search`,
            KEY,
            BLOB,
            '39',
            '1',
            "{'count': <uint32 2>}",
          ),
        ),
      );
      expect(search).toMatch(new RegExp(`^${ROOT}/Tasks/`));
      const benchmark = objectPathOf(
        expectSuccess(
          call(bus.address, memberId, `${ROOT}/RandomX`, `${NAME}.RandomX.Benchmark`, '4', '{}'),
        ),
      );
      expect(benchmark).toMatch(new RegExp(`^${ROOT}/Tasks/`));
      for (const task of [search, benchmark]) {
        const result = call(bus.address, memberId, task, `${NAME}.Task.Wait`);
        expect(result.ok).toBe(true);
      }

      const added = objectPathOf(
        expectSuccess(
          call(
            bus.address,
            memberId,
            `${ROOT}/WakeOnLan`,
            `${NAME}.WakeOnLan.AddHost`,
            'member-host',
            '02:00:00:00:00:0a',
            '10.77.0.10',
            "{'interface': <'eth0'>}",
          ),
        ),
      );
      expect(added).toBe(`${ROOT}/Hosts/member_2dhost`);
      expectSuccess(
        call(bus.address, memberId, `${ROOT}/WakeOnLan`, `${NAME}.WakeOnLan.Wake`, 'member-host'),
      );
      expectSuccess(call(bus.address, memberId, added, `${NAME}.Host.Wake`));
      expectSuccess(
        call(
          bus.address,
          memberId,
          `${ROOT}/WakeOnLan`,
          `${NAME}.WakeOnLan.RemoveHost`,
          'member-host',
        ),
      );
    });

    test('only root and the user vigil may own org.vigil.Vigil1', () => {
      const requestName = (identity: string[]): Reply =>
        runAs(identity, 'dbus-send', [
          `--bus=${bus.address}`,
          '--print-reply',
          '--dest=org.freedesktop.DBus',
          '/org/freedesktop/DBus',
          'org.freedesktop.DBus.RequestName',
          `string:${NAME}`,
          'uint32:4', // DO_NOT_QUEUE: an allowed request is answered 3 (EXISTS), vigild has it
        ]);
      for (const identity of [NOBODY_ID, memberId]) {
        const reply = requestName(identity);
        expect(reply.error).toBe(POLICY_DENIED);
        expect(reply.stderr).toContain('not allowed to own');
      }
      expect(requestName(vigilId).out).toMatch(/uint32 3$/);
    });
  });

  describe('with the policy bypassed, the daemon checks the caller itself', () => {
    let bus: PrivateBus;
    let daemon: DaemonProcess;
    let sleeperPath: string;

    beforeAll(async () => {
      bus = await busFrom(permissiveConfig());
      daemon = await daemonOn(bus);
      sleeperPath = addSleeper(bus.address);
    });

    test('an unprivileged UID gets org.vigil.Vigil1.Error.AccessDenied, logged with its UID', async () => {
      for (const [member, objectPath, args] of privilegedCalls(sleeperPath)) {
        const reply = call(bus.address, NOBODY_ID, objectPath, `${NAME}.${member}`, ...args);
        expect({ member, error: reply.error }).toEqual({ member, error: DAEMON_DENIED });
      }
      await waitForOutput(daemon, new RegExp(`access denied: uid ${NOBODY}\\b`));
      const hosts = expectSuccess(
        call(bus.address, [], `${ROOT}/WakeOnLan`, `${NAME}.WakeOnLan.ListHosts`),
      );
      expect(hosts).toContain(sleeperPath);
      expect(hosts).not.toContain('intruder');
    });

    test('a member of the group vigil passes the daemon check', () => {
      const hash = call(
        bus.address,
        memberId,
        `${ROOT}/RandomX`,
        `${NAME}.RandomX.Hash`,
        KEY,
        INPUT,
      );
      expect(hash.error).toBeUndefined();
      expectSuccess(call(bus.address, memberId, sleeperPath, `${NAME}.Host.Wake`));
    });
  });

  describe("with the unit's privileges", () => {
    test('vigild as the user vigil with only CAP_NET_RAW owns the name, serves and wakes', async () => {
      const bus = await busFrom(SYSTEM_BUS_CONF);
      // What vigild.service grants: User=vigil, NoNewPrivileges, CAP_NET_RAW ambient and bounding.
      const unitPrivileges = [
        ...vigilId,
        '--inh-caps=-all,+net_raw',
        '--ambient-caps=-all,+net_raw',
        '--bounding-set=-all,+net_raw',
        '--no-new-privs',
      ];
      const daemon = await daemonOn(bus, unitPrivileges);
      const status = fs.readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8');
      // The child of `ip netns exec` and setpriv is node itself (both exec).
      expect(status).toMatch(new RegExp(`^Uid:\\s+${account.uid}\\s`, 'm'));
      expect(status).toMatch(/^CapEff:\s+0000000000002000$/m);
      expect(status).toMatch(/^CapBnd:\s+0000000000002000$/m);
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);

      expectSuccess(
        call(bus.address, NOBODY_ID, `${ROOT}/RandomData`, `${NAME}.RandomData.quick`, '8'),
      );
      // Adding a host opens the ARP capture, which needs CAP_NET_RAW; waking sends the packet.
      const hostPath = addSleeper(bus.address);
      expectSuccess(call(bus.address, [], hostPath, `${NAME}.Host.Wake`));
      const wakeCount = expectSuccess(
        call(
          bus.address,
          NOBODY_ID,
          hostPath,
          'org.freedesktop.DBus.Properties.Get',
          `${NAME}.Host`,
          'WakeCount',
        ),
      );
      expect(wakeCount).toBe('(<uint32 1>,)');
    });
  });
});
