import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { startDaemon, type DaemonProcess } from './helpers/daemon';
import { gdbusCall } from './helpers/gdbus';
import { Lan } from './helpers/netns';

// vigild.service filters system calls. No systemd runs here to apply the filter, so this test
// checks the same thing from the other side: it traces every system call vigild makes (strace)
// while it runs under the unit's user and capabilities and does a bit of everything, and checks
// that each one is in the set the unit's SystemCallFilter= lines allow, as systemd expands them.
// A call outside that set would get EPERM under systemd (SystemCallErrorNumber=EPERM).

const REPO = path.resolve(__dirname, '..', '..');
const UNIT = path.join(REPO, 'systemd', 'vigild.service');
const NAME = 'org.vigil.Vigil1';
const ROOT = '/org/vigil/Vigil1';

/** The system calls of a filter group as systemd-analyze lists them, nested groups expanded. */
function expandGroup(group: string, seen = new Map<string, Set<string>>()): Set<string> {
  const known = seen.get(group);
  if (known) return known;
  const calls = new Set<string>();
  seen.set(group, calls);
  const listing = execFileSync('systemd-analyze', ['syscall-filter', group], { encoding: 'utf8' });
  for (const line of listing.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed === group) continue;
    for (const word of trimmed.split(/\s+/)) {
      if (word.startsWith('@')) for (const c of expandGroup(word, seen)) calls.add(c);
      else calls.add(word);
    }
  }
  return calls;
}

/**
 * The calls the unit allows, as systemd(5) reads its lines in order: the first decides the
 * default (here an allow list), then each allow line adds its calls and each `~` line
 * removes its calls, so a later allow line puts back a call an earlier `~` line removed.
 */
function unitSyscallAllowList(unitText: string): Set<string> {
  const allowed = new Set<string>();
  for (const match of unitText.matchAll(/^SystemCallFilter=(~?)(.*)$/gm)) {
    const deny = match[1] === '~';
    for (const item of match[2].trim().split(/\s+/)) {
      for (const call of item.startsWith('@') ? expandGroup(item) : [item]) {
        if (deny) allowed.delete(call);
        else allowed.add(call);
      }
    }
  }
  return allowed;
}

describe("vigild's system calls under the unit's filter", () => {
  let lan: Lan;
  let bus: PrivateBus;
  let daemon: DaemonProcess;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-syscalls-'));
  const trace = path.join(scratch, 'trace');

  beforeAll(async () => {
    execFileSync('systemd-sysusers', [path.join(REPO, 'systemd', 'vigil.sysusers')]);
    const [, , uid, gid] = execFileSync('getent', ['passwd', 'vigil'], { encoding: 'utf8' }).split(
      ':',
    );
    fs.chmodSync(scratch, 0o755);
    const stateDir = path.join(scratch, 'state');
    fs.mkdirSync(stateDir);
    fs.chownSync(stateDir, Number(uid), Number(gid));
    fs.writeFileSync(trace, '');
    fs.chownSync(trace, Number(uid), Number(gid));

    lan = new Lan(`vsc${process.pid}`);
    lan.addNode({ name: 'daemon', mac: '02:00:00:00:00:01', cidr: '10.78.0.1/24' });
    lan.addNode({ name: 'sleeper', mac: '02:00:00:00:00:09' });
    // The system-bus config: its policy lets the user vigil own the name and root call anything.
    bus = await startPrivateBus(path.join(REPO, 'services', 'test-system-bus.conf'));
    daemon = await startDaemon(bus.address, {
      stateDir,
      prefix: [
        'ip',
        'netns',
        'exec',
        lan.node('daemon').netns,
        // vigild.service's privileges; strace runs inside them, as systemd's filter would.
        'setpriv',
        `--reuid=${uid}`,
        `--regid=${gid}`,
        '--init-groups',
        '--inh-caps=-all,+net_raw',
        '--ambient-caps=-all,+net_raw',
        '--bounding-set=-all,+net_raw',
        '--no-new-privs',
        'strace',
        '-f',
        '-qq',
        '-o',
        trace,
      ],
    });
  });

  afterAll(async () => {
    await daemon?.kill();
    await bus?.stop();
    lan?.destroy();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  test('every call vigild makes is one the unit allows', async () => {
    // A bit of everything: random data, a task, RandomX on the worker pool, ARP capture, a wake.
    expect(gdbusCall(bus.address, `${ROOT}/RandomData`, `${NAME}.RandomData.quick`, '64')).toMatch(
      /^\('\d+',\)$/,
    );
    const host = gdbusCall(
      bus.address,
      `${ROOT}/WakeOnLan`,
      `${NAME}.WakeOnLan.AddHost`,
      'sleeper',
      '02:00:00:00:00:09',
      '10.78.0.9',
      "{'interface': <'eth0'>}",
    );
    expect(host).toContain(`${ROOT}/Hosts/sleeper`);
    gdbusCall(bus.address, `${ROOT}/WakeOnLan`, `${NAME}.WakeOnLan.Wake`, 'sleeper');
    const hash = gdbusCall(
      bus.address,
      `${ROOT}/RandomX`,
      `${NAME}.RandomX.Hash`,
      '[byte 0x41]',
      '[byte 0x42]',
    );
    expect(hash).toMatch(/^\(\[byte 0x/);
    const task = /'([^']+)'/.exec(
      gdbusCall(bus.address, `${ROOT}/RandomX`, `${NAME}.RandomX.Benchmark`, '8', '{}'),
    )?.[1];
    expect(gdbusCall(bus.address, task!, `${NAME}.Task.Wait`)).toContain('hashrate');
    gdbusCall(bus.address, `${ROOT}/Tasks`, `${NAME}.TaskManager.GetHistory`, '5');
    // Stop vigild itself (strace's only child) the way systemd does; strace ends with it.
    const stracePid = daemon.child.pid!;
    const vigildPid = Number(
      fs.readFileSync(`/proc/${stracePid}/task/${stracePid}/children`, 'utf8').trim().split(' ')[0],
    );
    process.kill(vigildPid, 'SIGTERM');
    expect(await daemon.exited).toBe(0);

    const used = new Set<string>();
    for (const line of fs.readFileSync(trace, 'utf8').split('\n')) {
      const call = /^\d+\s+([a-z_0-9]+)\(/.exec(line)?.[1];
      if (call) used.add(call);
    }
    // The trace is real: the calls behind the work above are in it.
    for (const call of ['execve', 'socket', 'bind', 'sendto', 'clone3', 'mmap', 'mprotect']) {
      expect(used).toContain(call);
    }
    const allowed = unitSyscallAllowList(fs.readFileSync(UNIT, 'utf8'));
    expect([...used].filter((call) => !allowed.has(call)).sort()).toEqual([]);
  });
});

describe('the allow list of a unit', () => {
  test('is computed as systemd does: a ~ line takes calls away', () => {
    const allowed = unitSyscallAllowList(
      'SystemCallFilter=@system-service\nSystemCallFilter=~@privileged\nSystemCallFilter=~mlock\n',
    );
    expect(allowed.has('read')).toBe(true);
    expect(allowed.has('setuid')).toBe(false); // @privileged, via @setuid
    expect(allowed.has('mlock')).toBe(false);
    expect(allowed.has('reboot')).toBe(false); // never in @system-service
    const spawned = spawnSync('systemd-analyze', ['syscall-filter', '@no-such-group']);
    expect(spawned.status).not.toBe(0);
  });

  test('a later allow line puts one call back: the unit gives setpriority, not the rest of @resources', () => {
    const allowed = unitSyscallAllowList(fs.readFileSync(UNIT, 'utf8'));
    expect(allowed.has('setpriority')).toBe(true);
    for (const call of ['setrlimit', 'sched_setscheduler', 'sched_setaffinity', 'ioprio_set']) {
      expect(allowed.has(call)).toBe(false);
    }
  });
});

describe('MemoryDenyWriteExecute stays off', () => {
  test("node's JIT dies under the kernel's memory-deny-write-execute (PR_SET_MDWE)", () => {
    // The kernel's own MDWE (Linux 6.3+) refuses what systemd's seccomp version refuses: making
    // written memory executable. If this ever passes, the unit can turn MemoryDenyWriteExecute on.
    const PR_SET_MDWE = 65;
    const launcher = [
      'import ctypes, os, sys',
      'libc = ctypes.CDLL(None, use_errno=True)',
      `if libc.prctl(${PR_SET_MDWE}, 1, 0, 0, 0) != 0: sys.exit(99)`,
      'os.execv(sys.argv[1], sys.argv[1:])',
    ].join('\n');
    const hotLoop = 'let s = 0; for (let i = 0; i < 1e7; i++) s += i; console.log(s);';
    const plain = spawnSync(process.execPath, ['-e', hotLoop], { encoding: 'utf8' });
    expect(plain.status).toBe(0);
    const denied = spawnSync(
      '/usr/bin/python3',
      ['-c', launcher, process.execPath, '-e', hotLoop],
      { encoding: 'utf8' },
    );
    expect(denied.status).not.toBe(99); // the kernel took the setting
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toMatch(/SetPermissions|Fatal/);
  });
});
