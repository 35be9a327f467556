import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  activatingBusConfig,
  gdbusCallArgs,
  startPrivateBus,
  waitForBusName,
  type PrivateBus,
} from './helpers/bus';

// Installs the real tree (scripts/install) into temporary DESTDIRs and checks it with the tools an
// administrator would use: systemd-analyze verify and security, systemd-sysusers,
// systemd-tmpfiles, and the installed program itself on a private bus.

const REPO = path.resolve(__dirname, '..', '..');
const INSTALL = path.join(REPO, 'scripts', 'install');
const UNINSTALL = path.join(REPO, 'scripts', 'uninstall');
const SECURITY_BAR = 2.0;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const result = spawnSync(command, args, {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function expectOk(result: Run): Run {
  if (result.status !== 0) {
    throw new Error(`exit ${result.status}\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

/** Every path under `root`, relative, directories with a trailing '/', node_modules summarised. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const rel = path.relative(root, full);
      if (entry.isDirectory()) {
        out.push(`${rel}/`);
        if (entry.name !== 'node_modules') walk(full);
      } else {
        out.push(rel);
      }
    }
  };
  if (fs.existsSync(root)) walk(root);
  return out.sort();
}

const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A root for systemd's own tools: the installed tree plus the distribution's units (dbus.socket,
 * sysinit.target...) and account databases, so `--root` checks the unit as installed and
 * nothing else has to be faked.
 */
function verificationRoot(destdir: string): string {
  const root = tempDir('vigil-root-');
  execFileSync('cp', ['-a', '--link', `${destdir}/.`, root]);
  fs.mkdirSync(path.join(root, 'usr/lib/systemd'), { recursive: true });
  execFileSync('cp', ['-a', '/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/')]);
  for (const db of ['passwd', 'group', 'shadow', 'gshadow']) {
    // Copies, not links: sysusers rewrites these.
    fs.rmSync(path.join(root, 'etc', db), { force: true });
    fs.copyFileSync(path.join('/etc', db), path.join(root, 'etc', db));
  }
  return root;
}

function exposure(unitFile: string, root?: string): { score: number; output: string } {
  const args = ['security', '--offline=yes', `--threshold=${SECURITY_BAR * 10}`];
  if (root) args.push(`--root=${root}`);
  const result = run('systemd-analyze', [...args, unitFile]);
  const match = /Overall exposure level for \S+: (\d+\.\d+)/.exec(result.stdout);
  if (!match) throw new Error(`no score in:\n${result.stdout}\n${result.stderr}`);
  const score = Number(match[1]);
  // --threshold makes systemd-analyze itself fail above the bar: both must agree.
  expect(result.status === 0).toBe(score <= SECURITY_BAR);
  return { score, output: result.stdout };
}

describe('system install into a DESTDIR', () => {
  let destdir: string;
  const app = 'usr/local/lib/vigil';

  beforeAll(() => {
    destdir = tempDir('vigil-destdir-');
    expectOk(run(INSTALL, ['--no-build'], { DESTDIR: destdir }));
  });

  test('puts program, wrappers, units, D-Bus files, man pages and config at the standard places', () => {
    const files = tree(destdir);
    for (const expected of [
      'usr/local/sbin/vigild',
      'usr/local/bin/vigilctl',
      `${app}/package.json`,
      `${app}/dist/src/daemon/vigild.js`,
      `${app}/dist/src/cli/vigilctl.js`,
      `${app}/MANIFEST`,
      'usr/local/lib/systemd/system/vigild.service',
      'usr/local/lib/systemd/user/vigild.service',
      'usr/local/lib/sysusers.d/vigil.conf',
      'usr/local/lib/tmpfiles.d/vigil.conf',
      'etc/dbus-1/system.d/org.vigil.Vigil1.conf',
      'usr/local/share/dbus-1/system-services/org.vigil.Vigil1.service',
      'usr/local/share/dbus-1/services/org.vigil.Vigil1.service',
      'usr/local/share/man/man8/vigild.8',
      'usr/local/share/man/man1/vigilctl.1',
      'usr/local/share/bash-completion/completions/vigilctl',
      'usr/local/share/zsh/site-functions/_vigilctl',
      'usr/local/share/doc/vigil/vigil.conf.example',
      'etc/vigil/vigil.conf',
    ]) {
      expect(files).toContain(expected);
    }
    // Every interface description that ships in services/ is installed for binding generators.
    const shipped = fs.readdirSync(path.join(REPO, 'services')).filter((f) => f.endsWith('.xml'));
    expect(shipped.length).toBeGreaterThan(0);
    for (const xml of shipped) expect(files).toContain(`usr/local/share/dbus-1/interfaces/${xml}`);
    // No tests, benchmarks or TypeScript in the installed program.
    expect(files.filter((f) => f.startsWith(`${app}/dist/test`) || f.endsWith('.ts'))).toEqual([]);
  });

  test('wrappers run the installed entry points with an absolute node', () => {
    for (const [wrapper, entry] of [
      ['usr/local/sbin/vigild', 'dist/src/daemon/vigild.js'],
      ['usr/local/bin/vigilctl', 'dist/src/cli/vigilctl.js'],
    ]) {
      const file = path.join(destdir, wrapper);
      expect(fs.statSync(file).mode & 0o777).toBe(0o755);
      const match = /^exec (\/\S+) (\S+) "\$@"$/m.exec(fs.readFileSync(file, 'utf8'));
      expect(match).not.toBeNull();
      expect(fs.existsSync(match![1])).toBe(true);
      expect(match![2]).toBe(`/usr/local/lib/vigil/${entry}`);
    }
  });

  test('installs policy, sysusers and tmpfiles byte for byte and the config untouched', () => {
    const same = (installed: string, source: string): void =>
      expect(fs.readFileSync(path.join(destdir, installed), 'utf8')).toBe(
        fs.readFileSync(path.join(REPO, source), 'utf8'),
      );
    same('etc/dbus-1/system.d/org.vigil.Vigil1.conf', 'services/org.vigil.Vigil1.conf');
    same('usr/local/lib/sysusers.d/vigil.conf', 'systemd/vigil.sysusers');
    same('usr/local/lib/tmpfiles.d/vigil.conf', 'systemd/vigil.tmpfiles');
    same('etc/vigil/vigil.conf', 'etc/vigil.conf');
    const activation = fs.readFileSync(
      path.join(destdir, 'usr/local/share/dbus-1/system-services/org.vigil.Vigil1.service'),
      'utf8',
    );
    expect(activation).toMatch(/^Name=org\.vigil\.Vigil1$/m);
    expect(activation).toMatch(/^SystemdService=vigild\.service$/m);
    expect(activation).toMatch(/^User=vigil$/m);
  });

  test('ships only production dependencies, native addons included', () => {
    const modules = fs.readdirSync(path.join(destdir, app, 'node_modules'));
    for (const wanted of ['better-sqlite3', 'cap', 'koffi', 'piscina', 'raw-socket']) {
      expect(modules).toContain(wanted);
    }
    // The wire layer is vigil's own; dbus-next is only a test client now.
    for (const devOnly of ['typescript', 'jest', 'eslint', 'prettier', 'node-gyp', '@particle']) {
      expect(modules).not.toContain(devOnly);
    }
    expect(fs.readdirSync(path.join(destdir, app, 'node_modules/@types'))).toEqual(['triple-beam']);
    // Resolved from the installed directory, which has no node_modules above it.
    const fromInstall = spawnSync(
      process.execPath,
      [
        '-e',
        "for (const m of ['better-sqlite3', 'cap', 'raw-socket', 'koffi', 'piscina']) require(m); new (require('better-sqlite3'))(':memory:').close();",
      ],
      { cwd: path.join(destdir, app), encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } },
    );
    expect(fromInstall.stderr).toBe('');
    expect(fromInstall.status).toBe(0);
  });

  test('the installed daemon serves RandomData.quick on a private bus', async () => {
    const bus: PrivateBus = await startPrivateBus();
    const state = tempDir('vigil-state-');
    const child = spawn(
      process.execPath,
      [
        path.join(destdir, app, 'dist/src/daemon/vigild.js'),
        '--bus',
        bus.address,
        '--state-dir',
        state,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, JOURNAL_STREAM: '' } },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      await waitForBusName(bus.address, {
        pid: child.pid,
        exited: new Promise((resolve) => child.once('exit', resolve)),
        describe: () => `installed vigild:\n${output}`,
      });
      const reply = expectOk(
        run(
          'gdbus',
          gdbusCallArgs(
            bus.address,
            '/org/vigil/Vigil1/RandomData',
            'org.vigil.Vigil1.RandomData.quick',
            ['16'],
          ),
        ),
      );
      const value = Number(/^\('(\d+)',\)$/.exec(reply.stdout.trim())?.[1]);
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(2 ** 16);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
      await bus.stop();
    }
  });

  test('systemd-analyze verify passes on the installed unit, and fails without its program', () => {
    const root = verificationRoot(destdir);
    const env = { MANPATH: path.join(destdir, 'usr/local/share/man') };
    const clean = run('systemd-analyze', ['verify', `--root=${root}`, 'vigild.service'], env);
    expect(clean.stderr).toBe('');
    expect(clean.status).toBe(0);

    // The check is real: the same root without the wrapper is refused.
    fs.rmSync(path.join(root, 'usr/local/sbin/vigild'));
    const broken = run('systemd-analyze', ['verify', `--root=${root}`, 'vigild.service'], env);
    expect(broken.status).not.toBe(0);
    expect(broken.stderr).toContain('/usr/local/sbin/vigild');
  });

  test(`systemd-analyze security rates the installed unit at ${SECURITY_BAR} or lower`, () => {
    const root = verificationRoot(destdir);
    const { score, output } = exposure(
      path.join(root, 'usr/local/lib/systemd/system/vigild.service'),
      root,
    );
    expect(score).toBeLessThanOrEqual(SECURITY_BAR);
    // The privileges that remain are the ones the brief grants, nothing more.
    expect(output).toMatch(/✗ AmbientCapabilities=/);
    expect(output).not.toMatch(/✗ User=/);
    expect(output).not.toMatch(/✗ NoNewPrivileges=/);
    // The one call given back from @resources (setpriority, for the RandomX background
    // worker's nice value) is the only system call filter systemd-analyze counts against it.
    const filterWeaknesses = output.match(/✗ SystemCallFilter=\S+/g) ?? [];
    expect(filterWeaknesses).toEqual(['✗ SystemCallFilter=~@resources']);
    expect(output).toMatch(/@resources is included \(e\.g\. setpriority is allowed\)/);
  });

  test('the score check fails a unit without the hardening', () => {
    const dir = tempDir('vigil-unhardened-');
    const unit = path.join(dir, 'vigild.service');
    fs.writeFileSync(
      unit,
      fs
        .readFileSync(path.join(REPO, 'systemd/vigild.service'), 'utf8')
        .split('\n')
        .filter((line) => !/^(Protect|Private|Restrict|SystemCall|Capability)/.test(line))
        .join('\n'),
    );
    expect(exposure(unit).score).toBeGreaterThan(SECURITY_BAR);
  });

  test('sysusers creates the user vigil and tmpfiles its state directory', () => {
    const root = verificationRoot(destdir);
    expectOk(run('systemd-sysusers', [`--root=${root}`]));
    const passwd = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8');
    const entry = /^vigil:x:(\d+):(\d+):[^:]*:\/var\/lib\/vigil:(\S+)$/m.exec(passwd);
    expect(entry).not.toBeNull();
    expect(Number(entry![1])).toBeLessThan(1000);
    expect(entry![3]).toMatch(/nologin$/);
    expect(fs.readFileSync(path.join(root, 'etc/group'), 'utf8')).toMatch(/^vigil:x:\d+:/m);

    expectOk(run('systemd-tmpfiles', [`--root=${root}`, '--create']));
    const state = fs.statSync(path.join(root, 'var/lib/vigil'));
    expect(state.mode & 0o777).toBe(0o750);
    expect(state.uid).toBe(Number(entry![1]));
  });

  test('reinstalling keeps an edited config and leaves the same tree; uninstall keeps only the config', () => {
    // The compiled program mirrors dist/, which a parallel build may change between the two runs.
    const stable = (): string[] => tree(destdir).filter((f) => !f.startsWith(`${app}/dist/`));
    const before = stable();
    const config = path.join(destdir, 'etc/vigil/vigil.conf');
    fs.writeFileSync(config, '[daemon]\nlog_level = debug\n');
    const again = expectOk(run(INSTALL, ['--no-build'], { DESTDIR: destdir }));
    expect(again.stdout).toContain('keeping existing');
    expect(stable()).toEqual(before);
    expect(fs.readFileSync(config, 'utf8')).toBe('[daemon]\nlog_level = debug\n');

    expectOk(run(UNINSTALL, [], { DESTDIR: destdir }));
    expect(tree(destdir)).toEqual(['etc/', 'etc/vigil/', 'etc/vigil/vigil.conf']);
    expect(fs.readFileSync(config, 'utf8')).toBe('[daemon]\nlog_level = debug\n');

    const twice = expectOk(run(UNINSTALL, [], { DESTDIR: destdir }));
    expect(twice.stdout).toContain('nothing to do');
    expect(tree(destdir)).toEqual(['etc/', 'etc/vigil/', 'etc/vigil/vigil.conf']);
  });
});

describe('install with other prefixes', () => {
  test('PREFIX=/opt/vigil points units and activation files at its own wrapper', () => {
    const destdir = tempDir('vigil-opt-');
    expectOk(run(INSTALL, ['--no-build'], { DESTDIR: destdir, PREFIX: '/opt/vigil' }));
    const unit = fs.readFileSync(
      path.join(destdir, 'opt/vigil/lib/systemd/system/vigild.service'),
      'utf8',
    );
    expect(unit).toMatch(/^ExecStart=\/opt\/vigil\/sbin\/vigild --system /m);
    expect(unit).toMatch(/^ExecReload=\/opt\/vigil\/bin\/vigilctl --system reload$/m);
    const userUnit = fs.readFileSync(
      path.join(destdir, 'opt/vigil/lib/systemd/user/vigild.service'),
      'utf8',
    );
    expect(userUnit).toMatch(/^ExecStart=\/opt\/vigil\/sbin\/vigild --session /m);
    expect(userUnit).toMatch(/^ExecReload=\/opt\/vigil\/bin\/vigilctl --session reload$/m);
    expect(userUnit).toContain('/opt/vigil/share/doc/vigil/vigil.conf.example');
    for (const bus of ['system-services', 'services']) {
      expect(
        fs.readFileSync(
          path.join(destdir, `opt/vigil/share/dbus-1/${bus}/org.vigil.Vigil1.service`),
          'utf8',
        ),
      ).toMatch(/^Exec=\/opt\/vigil\/sbin\/vigild --/m);
    }
    expect(tree(destdir).filter((f) => f.includes('/usr/local'))).toEqual([]);
    expect(fs.readFileSync(path.join(destdir, 'opt/vigil/sbin/vigild'), 'utf8')).toContain(
      '/opt/vigil/lib/vigil/dist/src/daemon/vigild.js',
    );
  });

  test('PREFIX=/usr puts the policy where packages put theirs', () => {
    const destdir = tempDir('vigil-usr-');
    expectOk(run(INSTALL, ['--no-build'], { DESTDIR: destdir, PREFIX: '/usr' }));
    const files = tree(destdir);
    expect(files).toContain('usr/share/dbus-1/system.d/org.vigil.Vigil1.conf');
    expect(files).toContain('usr/lib/systemd/system/vigild.service');
    // Debian's zsh reads packages' completions from vendor-completions.
    expect(files).toContain('usr/share/zsh/vendor-completions/_vigilctl');
    expect(files).toContain('usr/share/bash-completion/completions/vigilctl');
    expect(files).not.toContain('etc/dbus-1/');
    expectOk(run(UNINSTALL, [], { DESTDIR: destdir, PREFIX: '/usr' }));
    expect(tree(destdir)).toEqual(['etc/', 'etc/vigil/', 'etc/vigil/vigil.conf']);
  });
});

describe('per-user install (--user)', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    home = tempDir('vigil-home-');
    env = {
      HOME: home,
      XDG_CONFIG_HOME: '',
      XDG_DATA_HOME: '',
      XDG_STATE_HOME: '',
      XDG_RUNTIME_DIR: '',
      DESTDIR: '',
      PREFIX: '',
    };
    expectOk(run(INSTALL, ['--user', '--no-build'], env));
  });

  test('installs under ~/.local with a user unit systemd verifies', () => {
    const files = tree(home);
    for (const expected of [
      '.local/bin/vigild',
      '.local/bin/vigilctl',
      '.local/share/systemd/user/vigild.service',
      '.local/share/dbus-1/services/org.vigil.Vigil1.service',
      '.local/share/man/man8/vigild.8',
      '.local/share/bash-completion/completions/vigilctl',
      '.local/share/zsh/site-functions/_vigilctl',
      '.config/vigil/vigil.conf',
    ]) {
      expect(files).toContain(expected);
    }
    // Nothing of the system service in a user's install.
    expect(files.filter((f) => /system\.d|sysusers|tmpfiles|lib\/systemd\/system/.test(f))).toEqual(
      [],
    );
    const unit = path.join(home, '.local/share/systemd/user/vigild.service');
    expect(fs.readFileSync(unit, 'utf8')).toContain(
      `ExecStart=${home}/.local/bin/vigild --session`,
    );
    const verify = run('systemd-analyze', ['--user', 'verify', unit], {
      HOME: home,
      XDG_RUNTIME_DIR: tempDir('vigil-runtime-'),
      MANPATH: path.join(home, '.local/share/man'),
    });
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);

    // The installed client runs from the user's PATH entry.
    const version = expectOk(run(path.join(home, '.local/bin/vigilctl'), ['--version']));
    expect(version.stdout).toMatch(/\d+\.\d+\.\d+/);
  });

  test("the session bus starts the user's vigild on the first call (D-Bus activation)", async () => {
    // A session bus that knows only the user's service directory, started with the user's
    // HOME as a user session would be; no vigild runs until the call.
    const dir = tempDir('vigil-session-');
    activatingBusConfig(dir, `${home}/.local/share/dbus-1/services`);
    const busDaemon = spawn('dbus-daemon', [`--config-file=${dir}/session.conf`, '--nofork'], {
      stdio: 'ignore',
      env: { ...process.env, ...env },
    });
    const address = `unix:path=${dir}/bus`;
    try {
      while (!fs.existsSync(path.join(dir, 'bus'))) await new Promise((r) => setTimeout(r, 10));
      const quick = expectOk(
        run(
          'gdbus',
          gdbusCallArgs(
            address,
            '/org/vigil/Vigil1/RandomData',
            'org.vigil.Vigil1.RandomData.quick',
            ['8'],
          ),
        ),
      );
      expect(quick.stdout.trim()).toMatch(/^\('\d+',\)$/);
      // The activated daemon is the user's: its state went to ~/.local/state/vigil.
      expect(fs.existsSync(path.join(home, '.local/state/vigil'))).toBe(true);
      const owner = expectOk(
        run(
          'gdbus',
          gdbusCallArgs(
            address,
            '/org/freedesktop/DBus',
            'org.freedesktop.DBus.GetConnectionUnixProcessID',
            ['org.vigil.Vigil1'],
            'org.freedesktop.DBus',
          ),
        ),
      );
      const pid = Number(/uint32 (\d+)/.exec(owner.stdout)?.[1]);
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain(
        `${home}/.local/lib/vigil/dist/src/daemon/vigild.js\0--session`,
      );
      process.kill(pid, 'SIGTERM');
    } finally {
      busDaemon.kill('SIGTERM');
    }
  });

  test('uninstall --user removes the program and keeps config and state', () => {
    expectOk(run(UNINSTALL, ['--user'], env));
    // npm leaves its logs in ~/.npm.
    const left = tree(home).filter((f) => !f.startsWith('.npm/'));
    // The state directory stays with whatever the daemon wrote into it.
    const state = '.local/state/vigil/';
    expect(left.filter((f) => f === state || !f.startsWith(state))).toEqual([
      '.config/',
      '.config/vigil/',
      '.config/vigil/vigil.conf',
      '.local/',
      '.local/state/',
      '.local/state/vigil/',
    ]);
  });
});

describe('man pages', () => {
  /** The roff source as plain words: \\- is a dash, font escapes go. */
  const manText = (file: string): string =>
    fs
      .readFileSync(path.join(REPO, 'man', file), 'utf8')
      .replace(/\\-/g, '-')
      .replace(/\\f[BIRP]/g, '');

  test('vigild(8) documents every option vigild --help lists', () => {
    const help = expectOk(
      run(process.execPath, [path.join(REPO, 'dist/src/daemon/vigild.js'), '--help']),
    );
    const options = [...help.stdout.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]);
    expect(options).toContain('--state-dir');
    const text = manText('vigild.8');
    expect(options.filter((option) => !text.includes(option))).toEqual([]);
  });

  test('vigilctl(1) documents every command vigilctl --help lists', () => {
    const help = expectOk(
      run(process.execPath, [path.join(REPO, 'dist/src/cli/vigilctl.js'), '--help']),
    );
    const section = help.stdout.split('Commands:\n')[1].split('\n\n')[0];
    // A command is its lower-case words before the first argument or option.
    const commands = [...section.matchAll(/^ {2}([a-z][a-z-]*(?: [a-z][a-z-]*)*)(?= |$)/gm)].map(
      (m) => m[1],
    );
    expect(commands).toContain('random quick');
    const text = manText('vigilctl.1');
    expect(commands.filter((command) => !text.includes(command))).toEqual([]);
  });
});

describe('install and uninstall refuse bad input', () => {
  test('an unknown option is a usage error (exit 2) and changes nothing', () => {
    const destdir = tempDir('vigil-bad-');
    for (const script of [INSTALL, UNINSTALL]) {
      const result = run(script, ['--prefix=/nowhere'], { DESTDIR: destdir });
      expect(result.status).toBe(2);
      expect(result.stderr).toContain('unknown argument');
    }
    expect(tree(destdir)).toEqual([]);
  });

  test('uninstall where nothing is installed succeeds and does nothing', () => {
    const destdir = tempDir('vigil-empty-');
    const result = expectOk(run(UNINSTALL, [], { DESTDIR: destdir }));
    expect(result.stdout).toContain('nothing to do');
    expect(tree(destdir)).toEqual([]);
  });

  test('uninstall ignores a tampered manifest entry that is not an absolute path', () => {
    const destdir = tempDir('vigil-tamper-');
    const victim = tempDir('vigil-victim-');
    fs.writeFileSync(path.join(victim, 'keep'), 'x');
    fs.mkdirSync(path.join(destdir, 'usr/local/lib/vigil'), { recursive: true });
    fs.writeFileSync(
      path.join(destdir, 'usr/local/lib/vigil/MANIFEST'),
      `${path.relative(REPO, path.join(victim, 'keep'))}\n`,
    );
    const result = expectOk(run(UNINSTALL, [], { DESTDIR: destdir }));
    expect(result.stderr).toContain('suspicious');
    expect(fs.existsSync(path.join(victim, 'keep'))).toBe(true);
  });
});
