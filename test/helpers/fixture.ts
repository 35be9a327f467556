import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPrivateBus, type PrivateBus } from './bus';
import { TestClient } from './client';
import { startDaemon, type DaemonProcess } from './daemon';

/** A bus config that lets several UIDs connect, for tests of the daemon's own owner checks. */
export const MULTIUSER_BUS_CONFIG = path.resolve(
  __dirname,
  '../../../test/helpers/multiuser-bus.conf',
);

/**
 * The multi-user test bus with some limits changed from dbus-daemon's defaults (those of a
 * system bus: 32 MiB messages, 128 pending replies per connection); returns the config file.
 */
export function multiuserBusConfigWith(limits: Readonly<Record<string, number>>): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-busconf-')), 'bus.conf');
  const lines = Object.entries(limits).map(([k, v]) => `  <limit name="${k}">${v}</limit>`);
  const open = fs.readFileSync(MULTIUSER_BUS_CONFIG, 'utf8');
  fs.writeFileSync(file, open.replace('</busconfig>', `${lines.join('\n')}\n</busconfig>`));
  return file;
}

export interface DaemonFixture {
  readonly bus: PrivateBus;
  readonly daemon: DaemonProcess;
  readonly client: TestClient;
}

/**
 * One private bus, one vigild on it and one raw client for the whole test file, started in
 * beforeAll and stopped in afterAll. Read the fields inside tests, not at module load.
 */
export function useDaemon(
  options: { busConfig?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {},
): DaemonFixture {
  const fx: { bus?: PrivateBus; daemon?: DaemonProcess; client?: TestClient } = {};
  beforeAll(async () => {
    fx.bus = await startPrivateBus(options.busConfig);
    fx.daemon = await startDaemon(fx.bus.address, { args: options.args, env: options.env });
    fx.client = await TestClient.connect(fx.bus.address);
  });
  afterAll(async () => {
    fx.client?.close();
    await fx.daemon?.stop();
    await fx.bus?.stop();
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the test fixture's ${what} is not started yet`);
    return value;
  };
  return {
    get bus() {
      return started(fx.bus, 'bus');
    },
    get daemon() {
      return started(fx.daemon, 'daemon');
    },
    get client() {
      return started(fx.client, 'client');
    },
  };
}

/** One private bus and one raw client for the whole test file (tests start their own vigild). */
export function useBus(busConfig?: string): {
  readonly bus: PrivateBus;
  readonly client: TestClient;
} {
  const fx: { bus?: PrivateBus; client?: TestClient } = {};
  beforeAll(async () => {
    fx.bus = await startPrivateBus(busConfig);
    fx.client = await TestClient.connect(fx.bus.address);
  });
  afterAll(async () => {
    fx.client?.close();
    await fx.bus?.stop();
  });
  return {
    get bus() {
      if (!fx.bus) throw new Error('the test bus is not started yet');
      return fx.bus;
    },
    get client() {
      if (!fx.client) throw new Error('the test client is not started yet');
      return fx.client;
    },
  };
}
