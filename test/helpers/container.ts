import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * A minimal Debian root booted with systemd as PID 1 in a systemd-nspawn container, for tests
 * of the installed service under the real service manager. The root is built once with
 * mmdebstrap and kept under /var/tmp, keyed by a stamp of its package list; every boot runs on
 * an overlay of it, so the cached root stays pristine.
 */

const CACHE = '/var/tmp/vigil-systemd-root';
const SUITE = 'bookworm';
/**
 * What the container needs: systemd and the system bus, and the shared libraries vigil's
 * native parts load (libpcap for the ARP capture, librandomx for the hash). Node itself is the
 * host's, bound read-only into the container (Debian 12's nodejs is 18, vigil needs 20).
 */
export const ROOT_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'libpcap0.8', 'librandomx0'];

/** The cache key: suite and package list, so a changed list builds a new root. */
function stampOf(packages: readonly string[]): string {
  return createHash('sha256')
    .update(`${SUITE}\n${[...packages].sort().join('\n')}`)
    .digest('hex')
    .slice(0, 16);
}

/**
 * The cached root for `packages`, built first if its stamp is missing (about a minute with the
 * downloads). Built beside and renamed into place under a lock, so neither an interrupted build
 * nor a second test run building at the same time is ever taken for a finished root.
 */
export function debianRoot(packages: readonly string[] = ROOT_PACKAGES): string {
  const root = path.join(CACHE, `root-${stampOf(packages)}`);
  if (fs.existsSync(path.join(root, '.vigil-stamp'))) return root;
  fs.mkdirSync(CACHE, { recursive: true });
  const script = `
    set -e
    [ -e "$1/.vigil-stamp" ] && exit 0
    find "$(dirname "$1")" -mindepth 1 -maxdepth 1 -name 'root-*' -exec rm -rf {} +
    mmdebstrap --quiet --variant=minbase --include="$2" "$3" "$1.building"
    echo "$3 $2" >"$1.building/.vigil-stamp"
    mv "$1.building" "$1"
  `;
  const built = spawnSync(
    'flock',
    [path.join(CACHE, '.lock'), 'sh', '-c', script, 'sh', root, packages.join(','), SUITE],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (built.status !== 0) {
    throw new Error(
      `mmdebstrap could not build the Debian root (exit ${built.status}):\n${built.stderr}`,
    );
  }
  return root;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface BootOptions {
  /** The pristine root (read-only lower layer). */
  readonly root: string;
  /** A network namespace for the container (never the host's network). */
  readonly netnsPath: string;
  /** Host files or directories bound read-only at the same path inside. */
  readonly bindReadOnly?: readonly string[];
  /** Called with the writable root before the boot (e.g. to install into it). */
  readonly prepare?: (root: string) => void;
}

/** A booted container; `root` is its file system as seen from the host. */
export class Container {
  private constructor(
    readonly root: string,
    private readonly scratch: string,
    private readonly nspawn: ChildProcess,
    readonly pid1: number,
    private readonly console: () => string,
  ) {}

  static async boot(options: BootOptions): Promise<Container> {
    const scratch = fs.mkdtempSync(path.join('/var/tmp', 'vigil-container-'));
    const [upper, work, merged] = ['upper', 'work', 'root'].map((d) => path.join(scratch, d));
    for (const d of [upper, work, merged]) fs.mkdirSync(d);
    execFileSync('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${options.root},upperdir=${upper},workdir=${work}`,
      merged,
    ]);
    options.prepare?.(merged);
    // --keep-unit and --register=no: there is no systemd on the host to ask for a scope or
    // to register with machined.
    const nspawn = spawn(
      'systemd-nspawn',
      [
        '--quiet',
        '--register=no',
        '--keep-unit',
        '--console=pipe',
        `--machine=vigil-test-${process.pid}`,
        `--network-namespace-path=${options.netnsPath}`,
        ...(options.bindReadOnly ?? []).map((p) => `--bind-ro=${p}`),
        '-D',
        merged,
        '-b',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let output = '';
    nspawn.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    nspawn.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const pid1 = await containerInit(nspawn, () => output);
    const container = new Container(merged, scratch, nspawn, pid1, () => output);
    // "offline" until PID 1 answers on its private socket; then --wait waits for the boot.
    let running = container.run(['systemctl', 'is-system-running', '--wait'], 120_000);
    for (let i = 0; i < 300 && ['offline', ''].includes(running.stdout.trim()); i++) {
      await new Promise((r) => setTimeout(r, 100));
      running = container.run(['systemctl', 'is-system-running', '--wait'], 120_000);
    }
    if (!['running', 'degraded'].includes(running.stdout.trim())) {
      const failed = container.run(['systemctl', '--failed', '--no-pager']).stdout;
      await container.stop();
      throw new Error(
        `the container did not boot: ${running.stdout}${running.stderr}${failed}\n${output}`,
      );
    }
    return container;
  }

  /** Run a command inside (every namespace of the container's PID 1), with a clean environment. */
  run(argv: readonly string[], timeoutMs = 60_000, input?: string): RunResult {
    const r = spawnSync(
      'nsenter',
      [
        '-t',
        String(this.pid1),
        '-a',
        '--',
        'env',
        '-i',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        'LANG=C.UTF-8',
        ...argv,
      ],
      { encoding: 'utf8', timeout: timeoutMs, input },
    );
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** `run`, failing with everything it printed unless it exits 0. */
  ok(argv: readonly string[], timeoutMs?: number): string {
    const r = this.run(argv, timeoutMs);
    if (r.status !== 0) {
      throw new Error(`${argv.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    }
    return r.stdout;
  }

  consoleOutput(): string {
    return this.console();
  }

  /** Power the container off (SIGTERM halts it), then drop the overlay. */
  async stop(): Promise<void> {
    if (this.nspawn.exitCode === null && this.nspawn.signalCode === null) {
      const exited = new Promise((resolve) => this.nspawn.once('exit', resolve));
      this.nspawn.kill('SIGTERM');
      const timer = setTimeout(() => this.nspawn.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    spawnSync('umount', [this.root]);
    fs.rmSync(this.scratch, { recursive: true, force: true });
  }
}

/** The host PID of the container's PID 1: the descendant of nspawn whose own PID inside is 1. */
async function containerInit(nspawn: ChildProcess, output: () => string): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited:\n${output()}`);
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let status: string;
      try {
        status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      } catch {
        continue;
      }
      const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/);
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(status)?.[1]);
      // Once it is systemd: before the exec it is nspawn's child still setting up the root.
      const systemd = /^Name:\s+systemd$/m.test(status);
      if (nspid?.length === 2 && nspid[1] === '1' && ppid === nspawn.pid && systemd) {
        return Number(entry);
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no PID 1 in the container after 30 s:\n${output()}`);
}
