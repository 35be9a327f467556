/** vigilctl hash, hash-batch, search and bench against a real daemon with RandomX. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { meetsDifficulty } from '../src/randomx/validate';
import { isolatedEnv, runCtl } from './cli/run';
import { startPrivateBus, type PrivateBus } from './helpers/bus';
import { TestClient } from './helpers/client';
import { VIGILCTL } from './helpers/daemon';
import { VECTORS, withNonce } from './randomx/harness';
import {
  RX_IFACE,
  RX_PATH,
  randomxConfig,
  startRxDaemon,
  tempDir,
  type RxDaemon,
} from './randomx/daemon';

let bus: PrivateBus;
let daemon: RxDaemon;
let client: TestClient;

const ctl = (...args: string[]) => runCtl(['--bus', bus.address, ...args]);
const hex = (s: string): string => Buffer.from(s).toString('hex');

beforeAll(async () => {
  bus = await startPrivateBus();
  const config = randomxConfig(tempDir('vigil-rx-cli-'), ['threads = 2']);
  daemon = await startRxDaemon(bus.address, tempDir('vigil-rx-cli-state-'), config);
  client = await TestClient.connect(bus.address);
}, 60000);

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  await bus?.stop();
});

describe('vigilctl RandomX commands', () => {
  it('hash takes text or --hex and prints the hash', async () => {
    const [key, input, expected] = VECTORS[0];
    const text = await ctl('hash', key, input);
    expect(text.code).toBe(0);
    expect(text.stdout.trim()).toBe(expected);
    const asHex = await ctl('--json', 'hash', '--hex', hex(key), hex(input));
    expect(asHex.code).toBe(0);
    expect(JSON.parse(asHex.stdout)).toEqual({ hash: expected });
  });

  it('hash hashes the bytes given, also when they are not UTF-8', async () => {
    // Through bash, so the arguments reach vigilctl as raw bytes, as from a terminal.
    const out = execFileSync(
      'bash',
      [
        '-c',
        `"$0" "$1" --bus "$2" hash $'k\\xff' $'\\xff\\xfe'`,
        process.execPath,
        VIGILCTL,
        bus.address,
      ],
      { encoding: 'utf8', env: isolatedEnv() },
    );
    const [expected] = (await client.call(RX_PATH, RX_IFACE, 'Hash', 'ayay', [
      Buffer.from([0x6b, 0xff]),
      Buffer.from([0xff, 0xfe]),
    ])) as Buffer[];
    expect(out.trim()).toBe(expected.toString('hex'));
    const [replaced] = (await client.call(RX_PATH, RX_IFACE, 'Hash', 'ayay', [
      Buffer.from('k\uFFFD'),
      Buffer.from('\uFFFD\uFFFD'),
    ])) as Buffer[];
    expect(out.trim()).not.toBe(replaced.toString('hex'));
  });

  it('hash-batch prints one hash per input, in order', async () => {
    const result = await ctl('hash-batch', VECTORS[0][0], ...VECTORS.map(([, input]) => input));
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual(VECTORS.map(([, , h]) => h));
    expect(result.stderr).toMatch(/hashes/);
  });

  it('search prints every accepted nonce with its hash', async () => {
    const blob = Buffer.alloc(48, 7);
    const result = await ctl(
      'search',
      '--hex',
      hex('cli key'),
      blob.toString('hex'),
      '4',
      '3',
      '--count',
      '24',
    );
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const [nonce, h] = line.split(' ');
      const [again] = (await client.call(RX_PATH, RX_IFACE, 'Hash', 'ayay', [
        Buffer.from('cli key'),
        withNonce(blob, 4, Number(nonce)),
      ])) as Buffer[];
      expect(again.toString('hex')).toBe(h);
      expect(meetsDifficulty(again, 3n)).toBe(true);
    }
  });

  it('bench --json reports the benchmark result', async () => {
    const result = await ctl('--json', 'bench', '12', '--mode', 'light', '--threads', '1');
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ mode: 'light', threads: 1, nonces: 12 });
    expect(out.hashrate as number).toBeGreaterThan(0);
  });

  it('refuses bad arguments: usage errors locally, the rest named by vigil', async () => {
    const badHex = await ctl('hash', '--hex', 'zz', '00');
    expect(badHex.code).toBe(2);
    expect(badHex.stderr).toMatch(/not hex/);
    const badDifficulty = await ctl('search', 'k', 'blob-of-text', '0', 'many');
    expect(badDifficulty.code).toBe(2);
    const pastEnd = await ctl('search', 'k', 'abc', '1', '5');
    expect(pastEnd.code).toBe(1);
    expect(pastEnd.stderr).toMatch(/org\.vigil\.Vigil1\.Error\.InvalidArgument/);
    const zero = await ctl('search', 'k', 'abcdefgh', '0', '0');
    expect(zero.code).toBe(1);
    expect(zero.stderr).toMatch(/InvalidArgument.*difficulty/);
    const mode = await ctl('bench', '5', '--mode', 'warp');
    expect(mode.code).toBe(1);
    expect(mode.stderr).toMatch(/InvalidArgument.*mode/);
  });
});

describe('RandomX access control (root or the vigil group only)', () => {
  const NOBODY = 65534;
  let multiBus: PrivateBus;
  let multiDaemon: RxDaemon;

  beforeAll(async () => {
    multiBus = await startPrivateBus(
      path.resolve(__dirname, '../../test/helpers/multiuser-bus.conf'),
    );
    const config = randomxConfig(tempDir('vigil-rx-acl-'), ['threads = 1']);
    multiDaemon = await startRxDaemon(multiBus.address, tempDir('vigil-rx-acl-state-'), config);
  }, 60000);

  afterAll(async () => {
    await multiDaemon?.stop();
    await multiBus?.stop();
  });

  it('refuses hashing and RandomX jobs to another user with AccessDenied', async () => {
    const as = (uid: number | undefined, ...args: string[]) =>
      runCtl(['--bus', multiBus.address, ...args], isolatedEnv({ HOME: '/tmp' }), uid);
    for (const args of [
      ['hash', 'k', 'x'],
      ['hash-batch', 'k', 'x'],
      ['search', 'k', 'abcdefgh', '0', '1', '--count', '1'],
      ['bench', '1'],
    ]) {
      const denied = await as(NOBODY, ...args);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/^vigilctl: org\.vigil\.Vigil1\.Error\.AccessDenied: .+\n$/);
    }
    // Root may.
    const allowed = await as(undefined, 'hash', VECTORS[1][0], VECTORS[1][1]);
    expect(allowed.stdout.trim()).toBe(VECTORS[1][2]);
  });
});
