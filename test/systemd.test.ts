import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Container, debianRoot } from './helpers/container';
import { Lan } from './helpers/netns';
import { capture, magicPayload, readPcap } from './helpers/pcap';

// vigil installed as an administrator installs it, under the real systemd: a minimal Debian
// root (mmdebstrap, cached under /var/tmp), scripts/install with DESTDIR into it, booted with
// systemd-nspawn -b. Every check runs inside through nsenter into the container's PID 1, with
// the clients an administrator has there (systemctl, busctl, dbus-send, journalctl, setpriv).
// The container's network is a namespace of the test's own LAN (test/helpers/netns.ts), so a
// wake goes onto that LAN's wire, where tcpdump in the sleeping host's namespace sees it.
// Node is the host's, bound read-only at the same path: vigil needs Node >= 20, Debian 12 has 18.

const REPO = path.resolve(__dirname, '..', '..');
const NODE = fs.realpathSync(process.execPath);
const NAME = 'org.vigil.Vigil1';
const ROOT = '/org/vigil/Vigil1';
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
const SECURITY_BAR = 2.0;
const SLEEPER_MAC = '02:00:00:00:73:09';

/** Byte-array arguments for busctl: the length, then each byte. */
const busctlBytes = (text: string): string[] => {
  const bytes = [...Buffer.from(text)];
  return [String(bytes.length), ...bytes.map(String)];
};

function installInto(root: string): void {
  const r = spawnSync(path.join(REPO, 'scripts', 'install'), ['--no-build'], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, DESTDIR: root, NODE },
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`scripts/install: exit ${r.status}\n${r.stdout}${r.stderr}`);
}

let lan: Lan;
let container: Container;
let tcpdump: ChildProcess;
let scratch: string;
const pcapFile = (): string => path.join(scratch, 'sleeper.pcap');

const busctl = (...args: string[]): string[] => ['busctl', '--system', ...args];
const call = (objectPath: string, iface: string, member: string, ...args: string[]): string[] =>
  busctl('call', NAME, objectPath, `${NAME}.${iface}`, member, ...args);
const dbusSend = (objectPath: string, member: string, ...args: string[]): string[] => [
  'dbus-send',
  '--system',
  '--print-reply',
  `--dest=${NAME}`,
  objectPath,
  `${NAME}.${member}`,
  ...args,
];

/** The D-Bus error name a refused dbus-send printed. */
function refusal(argv: string[]): string | undefined {
  const r = container.run(argv);
  expect(r.status).not.toBe(0);
  return /^Error (\S+):/m.exec(r.stderr)?.[1];
}

const active = (): string => container.run(['systemctl', 'is-active', 'vigild']).stdout.trim();
const hostNames = (): string =>
  container.ok(['busctl', '--system', 'tree', '--list', NAME]).split('\n').join(' ');
const historyIds = (): string[] => {
  const out = container.ok([
    ...call(`${ROOT}/Tasks`, 'TaskManager', 'GetHistory', 'u', '0'),
    '--json=short',
  ]);
  const records = (JSON.parse(out) as { data: [Record<string, { data: unknown }>[]] }).data[0];
  return records.map((r) => String(r.Id.data));
};

beforeAll(async () => {
  if (NODE.startsWith('/home/') || NODE.startsWith('/root/')) {
    throw new Error(`node is ${NODE}; the unit cannot see home directories: use a system node`);
  }
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-systemd-'));
  const root = debianRoot();
  lan = new Lan(`vsd${process.pid}`);
  const vigil = lan.addNode({ name: 'vigil', mac: '02:00:00:00:73:01', cidr: '10.73.0.1/24' });
  lan.addNode({ name: 'sleeper', mac: SLEEPER_MAC });
  container = await Container.boot({
    root,
    netnsPath: `/run/netns/${vigil.netns}`,
    bindReadOnly: [NODE],
    prepare: installInto,
  });
}, 600_000);

afterAll(async () => {
  tcpdump?.kill('SIGTERM');
  await container?.stop();
  lan?.destroy();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
}, 60_000);

describe('vigild under systemd, installed by scripts/install', () => {
  test('systemctl enable --now starts it; it is active and rated 2.0 or better there too', () => {
    container.ok(['systemctl', 'enable', '--now', 'vigild']);
    expect(active()).toBe('active');
    expect(container.ok(['systemctl', 'is-enabled', 'vigild']).trim()).toBe('enabled');
    const security = container.run(['systemd-analyze', 'security', '--no-pager', 'vigild']);
    const score = Number(
      /Overall exposure level for vigild\.service: (\d+\.\d+)/.exec(security.stdout)?.[1],
    );
    expect(score).toBeGreaterThan(0);
    expect(score).toBeLessThanOrEqual(SECURITY_BAR);
    // It runs as the user vigil (made by sysusers at boot) with CAP_NET_RAW alone.
    const pid = container.ok(['systemctl', 'show', '-P', 'MainPID', 'vigild']).trim();
    const status = container.ok(['cat', `/proc/${pid}/status`]);
    const uid = container.ok(['id', '-u', 'vigil']).trim();
    expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
    expect(status).toMatch(/^CapEff:\s+0000000000002000$/m);
  });

  test('an unprivileged user gets quick and slow, and is refused Hash, AddHost and Wake', () => {
    expect(
      container.ok([...NOBODY, ...call(`${ROOT}/RandomData`, 'RandomData', 'quick', 'i', '16')]),
    ).toMatch(/^s "\d+"$/m);
    expect(
      container.ok([...NOBODY, ...call(`${ROOT}/RandomData`, 'RandomData', 'slow', 'i', '4')]),
    ).toMatch(/^s "[0-9a-f]+"$/m);
    const denied = 'org.freedesktop.DBus.Error.AccessDenied';
    expect(
      refusal([
        ...NOBODY,
        ...dbusSend(`${ROOT}/RandomX`, 'RandomX.Hash', 'array:byte:1', 'array:byte:2'),
      ]),
    ).toBe(denied);
    expect(
      refusal([
        ...NOBODY,
        ...dbusSend(
          `${ROOT}/WakeOnLan`,
          'WakeOnLan.AddHost',
          'string:intruder',
          `string:02:00:00:00:73:66`,
          'string:10.73.0.66',
          'dict:string:string:',
        ),
      ]),
    ).toBe(denied);
    expect(
      refusal([...NOBODY, ...dbusSend(`${ROOT}/WakeOnLan`, 'WakeOnLan.Wake', 'string:anything')]),
    ).toBe(denied);
    expect(refusal([...NOBODY, ...dbusSend(ROOT, 'Daemon.Reload')])).toBe(denied);
  });

  test('root hashes the official vector in light mode and runs a short light benchmark', () => {
    const out = container.ok([
      ...call(
        `${ROOT}/RandomX`,
        'RandomX',
        'Hash',
        'ayay',
        ...busctlBytes('test key 000'),
        ...busctlBytes('This is a test'),
      ),
      '--json=short',
    ]);
    const hash = Buffer.from((JSON.parse(out) as { data: number[][] }).data[0]).toString('hex');
    expect(hash).toBe('639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f');
    const task = /^o "(\S+)"$/m.exec(
      container.ok(
        call(
          `${ROOT}/RandomX`,
          'RandomX',
          'Benchmark',
          'ua{sv}',
          '64',
          '2',
          'mode',
          's',
          'light',
          'threads',
          'u',
          '1',
        ),
      ),
    )?.[1];
    expect(task).toMatch(new RegExp(`^${ROOT}/Tasks/`));
    const result = container.ok(
      [
        ...busctl('--timeout=120', 'call', NAME, task as string, `${NAME}.Task`, 'Wait'),
        '--json=short',
      ],
      130_000,
    );
    const fields = (JSON.parse(result) as { data: [Record<string, { data: unknown }>] }).data[0];
    expect(fields.mode.data).toBe('light');
    expect(Number(fields.hashrate.data)).toBeGreaterThan(0);
  });

  test('the unit’s system call filter lets a thread lower its own priority, and only that', () => {
    // The RandomX background worker runs at a higher nice value. systemd reads the unit's
    // SystemCallFilter= lines in order, so the last one gives setpriority back from @resources:
    // run as the unit runs (its filter lines, the user vigil), with and without that line.
    const unit = container.ok(['systemctl', 'cat', 'vigild']);
    const lines = unit.match(/^SystemCallFilter=.*$/gm) ?? [];
    expect(lines.at(-1)).toBe('SystemCallFilter=setpriority');
    const niceAs = (filter: string[], value: number): ReturnType<Container['run']> =>
      container.run([
        'systemd-run',
        '--wait',
        '--pipe',
        '--quiet',
        '-p',
        'User=vigil',
        '-p',
        'SystemCallErrorNumber=EPERM',
        ...filter.flatMap((line) => ['-p', line]),
        NODE,
        '-e',
        `const os = require('os'); os.setPriority(${value}); console.log(os.getPriority())`,
      ]);
    const lowered = niceAs(lines, 10);
    expect(lowered.stderr).toBe('');
    expect(lowered.stdout.trim()).toBe('10');
    // Raising it stays refused (no CAP_SYS_NICE), and without the last line so is lowering.
    expect(niceAs(lines, -5).status).not.toBe(0);
    const refused = niceAs(lines.slice(0, -1), 10);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/EPERM|not permitted/);
  });

  test('WakeOnLan.Available is true, and a wake reaches the wire of the container’s LAN', async () => {
    expect(
      container
        .ok(busctl('get-property', NAME, `${ROOT}/WakeOnLan`, `${NAME}.WakeOnLan`, 'Available'))
        .trim(),
    ).toBe('b true');
    tcpdump = await capture(lan, 'sleeper', pcapFile(), 'arp or udp port 9');
    container.ok(
      call(
        `${ROOT}/WakeOnLan`,
        'WakeOnLan',
        'AddHost',
        'sssa{sv}',
        'sleeper',
        SLEEPER_MAC,
        '10.73.0.9',
        '1',
        'interface',
        's',
        'eth0',
      ),
    );
    container.ok(call(`${ROOT}/WakeOnLan`, 'WakeOnLan', 'Wake', 's', 'sleeper'));
    let seen: string[] = [];
    for (let i = 0; i < 100 && seen.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      seen = fs.existsSync(pcapFile())
        ? readPcap(pcapFile()).flatMap((r) => magicPayload(r.data)?.mac ?? [])
        : [];
    }
    expect(seen).toContain(SLEEPER_MAC);
  });

  test('systemctl reload applies a host added to the config; a broken config is refused and the old one stays', () => {
    const conf = path.join(container.root, 'etc/vigil/vigil.conf');
    const original = fs.readFileSync(conf, 'utf8');
    fs.writeFileSync(
      conf,
      `${original}\n[host:reloaded]\nip = 10.73.0.20\nmac = 02:00:00:00:73:20\ninterface = eth0\n`,
    );
    container.ok(['systemctl', 'reload', 'vigild']);
    expect(hostNames()).toContain(`${ROOT}/Hosts/reloaded`);
    const withHost = fs.readFileSync(conf, 'utf8');

    fs.writeFileSync(conf, `${withHost}\n[host:broken\nip = 10.73.0.21\n`);
    const refused = container.run(['systemctl', 'reload', 'vigild']);
    expect(refused.status).not.toBe(0);
    expect(active()).toBe('active');
    expect(hostNames()).toContain(`${ROOT}/Hosts/reloaded`);
    expect(container.ok(['journalctl', '-u', 'vigild', '--no-pager', '-p', 'err'])).toMatch(
      /reload \(asked by uid \d+\) refused, the running config stays: .*vigil\.conf:\d+/,
    );
    fs.writeFileSync(conf, withHost);
  });

  test('systemctl stop, then a call starts it again through bus activation', () => {
    container.ok(['systemctl', 'stop', 'vigild']);
    expect(active()).toBe('inactive');
    expect(container.ok(call(`${ROOT}/RandomData`, 'RandomData', 'quick', 'i', '8'))).toMatch(
      /^s "\d+"$/m,
    );
    expect(active()).toBe('active');
  });

  test('scripts/install again while it runs (an upgrade) keeps the history and the config', () => {
    const before = historyIds();
    expect(before.length).toBeGreaterThan(0);
    installInto(container.root);
    container.ok(['systemctl', 'daemon-reload']);
    container.ok(['systemctl', 'restart', 'vigild']);
    expect(active()).toBe('active');
    expect(historyIds()).toEqual(expect.arrayContaining(before));
    expect(hostNames()).toContain(`${ROOT}/Hosts/reloaded`);
  });

  test('the journal keeps vigil’s priorities: a refused call’s warning is there at -p warning', () => {
    // Cancelling root's task passes the bus policy (anyone may try) and is refused by vigild.
    const id = /^s "(\S+)"$/m.exec(
      container.ok(call(`${ROOT}/RandomData`, 'RandomData', 'slow', 'i', '64')),
    )?.[1];
    expect(refusal([...NOBODY, ...dbusSend(`${ROOT}/Tasks/${id}`, 'Task.Cancel')])).toBe(
      'org.vigil.Vigil1.Error.AccessDenied',
    );
    const warnings = container.ok([
      'journalctl',
      '-u',
      'vigild',
      '--no-pager',
      '-p',
      'warning',
      '-o',
      'cat',
    ]);
    expect(warnings).toMatch(new RegExp(`access denied: uid 65534 may not cancel task ${id}`));
    // Informational lines stay out of -p warning, and are there at their own level.
    expect(warnings).not.toMatch(/owns org\.vigil\.Vigil1/);
    expect(
      container.ok(['journalctl', '-u', 'vigild', '--no-pager', '-p', 'notice', '-o', 'cat']),
    ).toMatch(/owns org\.vigil\.Vigil1 on the system bus/);
  });

  test('scripts/uninstall stops and removes it, and leaves state and config', () => {
    fs.copyFileSync(
      path.join(REPO, 'scripts', 'uninstall'),
      path.join(container.root, 'root/uninstall'),
    );
    container.ok(['bash', '/root/uninstall']);
    expect(active()).not.toBe('active');
    expect(fs.existsSync(path.join(container.root, 'usr/local/lib/vigil'))).toBe(false);
    expect(
      fs.existsSync(path.join(container.root, 'usr/local/lib/systemd/system/vigild.service')),
    ).toBe(false);
    expect(fs.readFileSync(path.join(container.root, 'etc/vigil/vigil.conf'), 'utf8')).toContain(
      '[host:reloaded]',
    );
    const state = path.join(container.root, 'var/lib/vigil');
    expect(fs.readdirSync(state).length).toBeGreaterThan(0);
  });
});
