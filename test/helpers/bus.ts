import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A private dbus-daemon for one test file: never the machine's own buses. */
export interface PrivateBus {
  address: string;
  dir: string;
  stop(): Promise<void>;
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
