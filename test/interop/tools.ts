import { execFile } from 'node:child_process';
import path from 'node:path';

/** Debian's Python, which has `dbus` and `gi` (the one on PATH may be another). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** The source folder of these tests (they run compiled from dist/test/interop). */
export const INTEROP_SOURCE = path.resolve(__dirname, '../../../test/interop');
export const SERVICES_DIR = path.resolve(__dirname, '../../../services');

export const BUS_NAME = 'org.vigil.Vigil1';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program to its end; never rejects, so tests can assert on failures too. */
export function run(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        env: { ...process.env, ...opts.env },
        timeout: opts.timeoutMs ?? 20000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Run and insist on success; the failure message carries what the program said. */
export async function runOk(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

export interface NormalMember {
  args: string[][];
  annotations: Record<string, string>;
}

export interface NormalInterface {
  annotations: Record<string, string>;
  methods: Record<string, NormalMember>;
  signals: Record<string, NormalMember>;
  properties: Record<string, { type: string; access: string; annotations: Record<string, string> }>;
}

export interface NormalNode {
  interfaces: Record<string, NormalInterface>;
  children: string[];
}

/** Introspection XML reduced to comparable structure by Python's xml.etree. */
export async function normalise(xml: string): Promise<NormalNode> {
  const out = await runOk(
    SYSTEM_PYTHON,
    [path.join(INTEROP_SOURCE, 'introspection_normalise.py')],
    { input: xml },
  );
  return JSON.parse(out) as NormalNode;
}

/** What `gdbus introspect --xml` says about one object of the daemon. */
export function gdbusIntrospect(address: string, objectPath: string): Promise<string> {
  return runOk('gdbus', [
    'introspect',
    '--address',
    address,
    '--dest',
    BUS_NAME,
    '--object-path',
    objectPath,
    '--xml',
  ]);
}

/** `gdbus call` on the daemon; resolves with gdbus's own text output. */
export function gdbusCall(
  address: string,
  objectPath: string,
  method: string,
  args: readonly string[] = [],
): Promise<RunResult> {
  return run('gdbus', [
    'call',
    '--address',
    address,
    '--dest',
    BUS_NAME,
    '--object-path',
    objectPath,
    '--method',
    method,
    ...args,
  ]);
}

/** `busctl --address=... --json=short` (systemd's client) against the daemon. */
export function busctl(address: string, args: readonly string[]): Promise<RunResult> {
  return run('busctl', [`--address=${address}`, ...args]);
}

/** `dbus-send --print-reply` (libdbus's client) against the daemon. */
export function dbusSend(address: string, args: readonly string[]): Promise<RunResult> {
  return run('dbus-send', [`--bus=${address}`, '--print-reply', `--dest=${BUS_NAME}`, ...args]);
}
