/**
 * `node dist/bench/systemd/start.js [RUNS]` (as root): how long `systemctl start vigild` takes
 * under the real systemd until the unit is active, which for Type=dbus means the name
 * org.vigil.Vigil1 is owned. Boots the cached Debian root of test/systemd.test.ts with vigil
 * installed by scripts/install, then starts and stops the unit RUNS times (default 10).
 *
 * Two numbers per run: systemd's own (InactiveExitTimestamp to ActiveEnterTimestamp,
 * monotonic, so the start job from its first step to the name owned), and the wall time of
 * `systemctl start` as the administrator sees it (through nsenter, which adds a few ms).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Container, debianRoot } from '../../test/helpers/container';
import { Lan } from '../../test/helpers/netns';

const REPO = path.resolve(__dirname, '..', '..', '..');
const NODE = fs.realpathSync(process.execPath);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 10);
  const lan = new Lan(`vbs${process.pid}`);
  const node = lan.addNode({ name: 'vigil', mac: '02:00:00:00:72:01', cidr: '10.72.0.1/24' });
  const container = await Container.boot({
    root: debianRoot(),
    netnsPath: `/run/netns/${node.netns}`,
    bindReadOnly: [NODE],
    prepare: (root) => {
      const r = spawnSync(path.join(REPO, 'scripts', 'install'), ['--no-build'], {
        cwd: REPO,
        env: { ...process.env, DESTDIR: root, NODE },
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(r.stderr);
    },
  });
  try {
    // One start and stop first: the page cache holds node and vigil from then on, as it would
    // for every start but a machine's first.
    container.ok(['systemctl', 'start', 'vigild']);
    container.ok(['systemctl', 'stop', 'vigild']);
    const bySystemd: number[] = [];
    const wall: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      container.ok(['systemctl', 'start', 'vigild']);
      wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const [exit, enter] = container
        .ok([
          'systemctl',
          'show',
          '-P',
          'InactiveExitTimestampMonotonic',
          '-P',
          'ActiveEnterTimestampMonotonic',
          'vigild',
        ])
        .trim()
        .split('\n')
        .map(Number);
      bySystemd.push((enter - exit) / 1000);
      container.ok(['systemctl', 'stop', 'vigild']);
    }
    const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(' ');
    console.log(`runs: ${runs}`);
    console.log(
      `systemd, start job to name owned (ms): median ${median(bySystemd).toFixed(0)}; ${fmt(bySystemd)}`,
    );
    console.log(
      `systemctl start wall time (ms):       median ${median(wall).toFixed(0)}; ${fmt(wall)}`,
    );
  } finally {
    await container.stop();
    lan.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
