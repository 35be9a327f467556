import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { commands, findCommand } from '../src/cli/commands';
import { commandOptions, LIVE_ARGUMENTS, LIVE_OPTIONS, shellWords } from '../src/cli/complete';
import {
  activatingBusConfig,
  gdbusCallArgs,
  startPrivateBus,
  type PrivateBus,
} from './helpers/bus';
import { IFACE, ROOT, TestClient, variant } from './helpers/client';
import { startDaemon, VIGILCTL, type DaemonProcess } from './helpers/daemon';
import { Lan } from './helpers/netns';

// The shipped completion scripts, driven the way the shells drive them: bash's completion
// function with COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT set, COMPREPLY read back; zsh's
// function loaded by autoload in `zsh -f`. Both call the real vigilctl, which asks a real vigild
// on a private bus for task ids and host names (vigild in a network namespace of the test's own).

const REPO = path.resolve(__dirname, '..', '..');
const BASH_SCRIPT = path.join(REPO, 'completions', 'vigilctl.bash');
const ZSH_DIR = path.join(REPO, 'completions');
const RD = `${ROOT}/RandomData`;
const RD_IFACE = `${IFACE}RandomData`;

let scratch: string;
let env: NodeJS.ProcessEnv;

beforeAll(() => {
  // `vigilctl` on PATH is the built one, as an install puts it there.
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-complete-'));
  fs.mkdirSync(path.join(scratch, 'bin'));
  fs.writeFileSync(
    path.join(scratch, 'bin', 'vigilctl'),
    `#!/bin/sh\nexec ${process.execPath} ${VIGILCTL} "$@"\n`,
    { mode: 0o755 },
  );
  env = { ...process.env, PATH: `${scratch}/bin:${process.env.PATH ?? ''}`, HOME: scratch };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  delete env.VIGIL_BUS_ADDRESS;
});

afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** What bash offers after `line` (the cursor at its end), through the registered function. */
function bashComplete(line: string): { words: string[]; stderr: string } {
  const script = `
    source "$1"
    COMP_LINE=$2
    COMP_POINT=\${#COMP_LINE}
    read -ra COMP_WORDS <<< "$COMP_LINE"
    [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
    COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
    spec=$(complete -p vigilctl) || exit 3
    fn=\${spec#*-F }; fn=\${fn%% *}
    "$fn" vigilctl "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\\n' "\${COMPREPLY[@]}"
  `;
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'bash', BASH_SCRIPT, line], {
    encoding: 'utf8',
    env,
    timeout: 20_000,
  });
  if (r.status !== 0) throw new Error(`bash exited ${r.status}: ${r.stderr}`);
  return { words: r.stdout.split('\n').filter((w) => w !== ''), stderr: r.stderr };
}

const offered = (line: string): string[] => bashComplete(line).words;

describe('bash completion, without a daemon', () => {
  test('offers every command’s first word and help, never the hidden __complete', () => {
    const words = offered('vigilctl ');
    const firsts = [...new Set(commands.map((c) => c.name.split(' ')[0]))];
    expect(words.sort()).toEqual([...firsts, 'help'].sort());
    expect(words).not.toContain('__complete');
    expect(offered('vigilctl re').sort()).toEqual(['reload', 'resume']);
    expect(offered('vigilctl --json st')).toEqual(['status']);
  });

  test('offers subcommands of a group, also after help', () => {
    expect(offered('vigilctl random ').sort()).toEqual(['quick', 'slow']);
    expect(offered('vigilctl hosts ').sort()).toEqual(['add', 'remove']);
    expect(offered('vigilctl help random q')).toEqual(['quick']);
  });

  test('offers the options a command’s usage names, and the global ones', () => {
    expect(offered('vigilctl hosts add --in')).toEqual(['--interface']);
    expect(offered('vigilctl history --')).toEqual(
      expect.arrayContaining(['--limit', '--system', '--bus', '--json']),
    );
    expect(offered('vigilctl --sy')).toEqual(['--system']);
    // The value of an option, or a bus address, is the user's to type.
    expect(offered('vigilctl --bus ')).toEqual([]);
    expect(offered('vigilctl history --limit ')).toEqual([]);
  });

  test('says nothing, and quickly gives up, when there is no daemon to ask', async () => {
    const bus = await startPrivateBus();
    try {
      for (const line of [
        `vigilctl --bus ${bus.address} cancel `,
        `vigilctl --bus=${bus.address} wake `,
        'vigilctl --bus unix:path=/nonexistent/bus task ',
      ]) {
        expect({ line, ...bashComplete(line) }).toEqual({ line, words: [], stderr: '' });
      }
    } finally {
      await bus.stop();
    }
  });

  test('never starts the daemon through bus activation', async () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'activation-'));
    const marker = path.join(dir, 'activated');
    fs.mkdirSync(path.join(dir, 'services'));
    fs.writeFileSync(
      path.join(dir, 'services', 'org.vigil.Vigil1.service'),
      `[D-BUS Service]\nName=org.vigil.Vigil1\nExec=/bin/sh -c 'touch ${marker}'\n`,
    );
    const bus = await startPrivateBus(activatingBusConfig(dir, path.join(dir, 'services')));
    try {
      expect(offered(`vigilctl --bus ${bus.address} cancel `)).toEqual([]);
      expect(fs.existsSync(marker)).toBe(false);
      // The same bus does activate for an ordinary call: the check above could have failed.
      spawnSync(
        'gdbus',
        gdbusCallArgs(bus.address, ROOT, 'org.freedesktop.DBus.Peer.Ping', ['--timeout', '1']),
      );
      expect(fs.existsSync(marker)).toBe(true);
    } finally {
      await bus.stop();
    }
  });
});

describe('bash and zsh completion with a daemon', () => {
  let lan: Lan;
  let bus: PrivateBus;
  let daemon: DaemonProcess;
  let client: TestClient;
  let taskId = '';

  beforeAll(async () => {
    lan = new Lan(`vcp${process.pid}`);
    const node = lan.addNode({ name: 'srv', mac: '02:00:00:00:75:01', cidr: '10.75.0.1/24' });
    bus = await startPrivateBus();
    daemon = await startDaemon(bus.address, { prefix: ['ip', 'netns', 'exec', node.netns] });
    client = await TestClient.connect(bus.address);
    await client.call(`${ROOT}/WakeOnLan`, `${IFACE}WakeOnLan`, 'AddHost', 'sssa{sv}', [
      'sleepy-pc',
      '02:00:00:00:75:09',
      '10.75.0.9',
      { interface: variant('s', 'eth0') },
    ]);
    [taskId] = (await client.call(RD, RD_IFACE, 'slow', 'i', [64])) as string[];
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    await bus?.stop();
    lan?.destroy();
  });

  test('task ids for task, wait, cancel, pause and resume', () => {
    for (const command of ['task', 'wait', 'cancel', 'pause', 'resume']) {
      expect(offered(`vigilctl --bus ${bus.address} ${command} `)).toEqual([taskId]);
    }
    expect(offered(`vigilctl --bus ${bus.address} cancel ${taskId.slice(0, 3)}`)).toEqual([taskId]);
    // One task id only: the command takes one.
    expect(offered(`vigilctl --bus ${bus.address} cancel ${taskId} `)).toEqual([]);
  });

  test('host names, unescaped, for wake and hosts remove; none for hosts add', () => {
    expect(offered(`vigilctl --bus ${bus.address} wake sl`)).toEqual(['sleepy-pc']);
    expect(offered(`vigilctl --bus=${bus.address} hosts remove `)).toEqual(['sleepy-pc']);
    expect(offered(`vigilctl --bus ${bus.address} hosts add `)).toEqual([]);
  });

  test('host names for the value of wakes --host; none for --limit', () => {
    expect(offered(`vigilctl --bus ${bus.address} wakes --host `)).toEqual(['sleepy-pc']);
    expect(offered(`vigilctl --bus ${bus.address} wakes --limit 5 --host sl`)).toEqual([
      'sleepy-pc',
    ]);
    expect(offered(`vigilctl --bus ${bus.address} wakes --host x`)).toEqual([]);
    expect(offered(`vigilctl --bus ${bus.address} wakes --limit `)).toEqual([]);
    expect(offered(`vigilctl --bus ${bus.address} wakes --host sleepy-pc --`)).toEqual(
      expect.arrayContaining(['--limit', '--host']),
    );
  });

  test('zsh: the function autoloads in zsh -f and hands vigilctl’s candidates to the completion system', () => {
    // compadd and _describe are zsh's completion builtins; here they print what they were given.
    const script = `
      fpath=(${ZSH_DIR} $fpath)
      autoload -Uz _vigilctl
      compadd() { [[ $1 == -a ]] && print -rl -- "plain:\${(@P)2}" }
      _describe() { print -rl -- "described:\${(@P)4}" }
      words=(vigilctl "$@"); CURRENT=\${#words}
      _vigilctl
    `;
    const zsh = (...words: string[]): string[] => {
      const r = spawnSync('zsh', ['-f', '-c', script, 'zsh', ...words], {
        encoding: 'utf8',
        env,
        timeout: 20_000,
      });
      expect(r.stderr).toBe('');
      return r.stdout.split('\n').filter((l) => l !== '');
    };
    const top = zsh('');
    expect(top).toEqual(
      expect.arrayContaining([expect.stringMatching(/^described:.*\brandom:random commands\b/)]),
    );
    expect(zsh('--bus', bus.address, 'wake', '')).toEqual(['plain:sleepy-pc']);
    expect(zsh('--bus', bus.address, 'cancel', '')).toEqual([`plain:${taskId}`]);
    expect(zsh('--bus', bus.address, 'wakes', '--host', '')).toEqual(['plain:sleepy-pc']);
  });
});

describe('the completion tables follow vigilctl', () => {
  test('every command with live values exists and takes the value first', () => {
    for (const [name, kind] of Object.entries(LIVE_ARGUMENTS)) {
      const found = findCommand(name.split(' '));
      expect(found?.command.name).toBe(name);
      const first = found?.command.usage.slice(name.length).trim().split(' ')[0];
      expect([name, first]).toEqual([
        name,
        kind === 'tasks' ? 'ID' : expect.stringMatching(/^NAME/),
      ]);
    }
  });

  test('every option with live values is one its command takes with a value', () => {
    for (const [name, options] of Object.entries(LIVE_OPTIONS)) {
      const found = findCommand(name.split(' '));
      expect(found?.command.name).toBe(name);
      for (const option of Object.keys(options)) {
        expect([name, option, commandOptions(found!.command).get(option)]).toEqual([
          name,
          option,
          true,
        ]);
      }
    }
  });

  test('the line is split as the shell would split it', () => {
    expect(shellWords('vigilctl hosts add "my pc" ')).toEqual([
      'vigilctl',
      'hosts',
      'add',
      'my pc',
      '',
    ]);
    expect(shellWords("vigilctl --bus 'unix:path=/a b' ta")).toEqual([
      'vigilctl',
      '--bus',
      'unix:path=/a b',
      'ta',
    ]);
    expect(shellWords('vigilctl wake my\\ pc')).toEqual(['vigilctl', 'wake', 'my pc']);
  });
});
