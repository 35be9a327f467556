/** `org.vigil.Vigil1.RandomX`: the thin translation between the bus and the engine. */
import { bind, type InterfaceSpec } from '../bus/interface';
import { IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import type { ObjectServer } from '../bus/server';
import { unwrapDict } from '../bus/values';
import { submitter, taskPath } from '../tasks/dbus';
import type { TaskManager } from '../tasks/manager';
import type { Json, Submitter } from '../tasks/types';
import type { RandomXEngine } from './engine';
import { BATCH_KIND, BENCHMARK_KIND, SEARCH_KIND } from './tasks';
import {
  checkMode,
  checkOptionNames,
  checkRange,
  checkThreads,
  checkU32,
  toBytes,
} from './validate';

export const RANDOMX_PATH = `${ROOT_PATH}/RandomX`;

export interface RandomXService {
  engine: RandomXEngine;
  manager: TaskManager;
}

const hex = (b: Buffer): string => b.toString('hex');

/** `mode` and `threads` of an options dict, with the engine's defaults. */
function jobOptions(
  engine: RandomXEngine,
  options: Record<string, unknown>,
): { mode: string; threads: number } {
  return {
    mode: options.mode === undefined ? engine.defaultMode : checkMode(options.mode),
    threads: options.threads === undefined ? engine.threads : checkThreads(options.threads),
  };
}

function optionalU32(value: unknown, what: string): number | undefined {
  return value === undefined ? undefined : checkU32(value, what);
}

async function submit(
  svc: RandomXService,
  kind: string,
  params: Json,
  owner: Submitter,
): Promise<string> {
  return taskPath(svc.manager.submit(kind, params, owner).id);
}

export const randomXInterface: InterfaceSpec<RandomXService> = {
  name: `${IFACE_PREFIX}RandomX`,
  methods: [
    {
      name: 'Hash',
      access: 'privileged',
      in: [
        ['key', 'ay'],
        ['input', 'ay'],
      ],
      out: [['hash', 'ay']],
      handler: (svc, [key, input]) => svc.engine.hash(toBytes(key, 'key'), toBytes(input, 'input')),
    },
    {
      name: 'HashBatch',
      access: 'privileged',
      in: [
        ['key', 'ay'],
        ['inputs', 'aay'],
        ['options', 'a{sv}'],
      ],
      out: [['task', 'o']],
      handler: async (svc, [key, inputs, rawOptions], ctx) => {
        const owner = await submitter(ctx);
        const options = unwrapDict(rawOptions);
        checkOptionNames(options, ['mode', 'threads']);
        const list = (inputs as unknown[]).map((input, i) => hex(toBytes(input, `input ${i}`)));
        return submit(
          svc,
          BATCH_KIND,
          {
            key: hex(toBytes(key, 'key')),
            inputs: list,
            ...jobOptions(svc.engine, options),
          },
          owner,
        );
      },
    },
    {
      name: 'Search',
      access: 'privileged',
      in: [
        ['key', 'ay'],
        ['blob', 'ay'],
        ['nonce_offset', 'u'],
        ['difficulty', 't'],
        ['options', 'a{sv}'],
      ],
      out: [['task', 'o']],
      handler: async (svc, [key, blob, nonceOffset, difficulty, rawOptions], ctx) => {
        const owner = await submitter(ctx);
        const options = unwrapDict(rawOptions);
        checkOptionNames(options, ['start_nonce', 'count', 'mode', 'threads']);
        const startNonce = optionalU32(options.start_nonce, 'start_nonce') ?? 0;
        const count = checkRange(
          startNonce,
          options.count === undefined ? undefined : Number(options.count as number | bigint),
        );
        return submit(
          svc,
          SEARCH_KIND,
          {
            key: hex(toBytes(key, 'key')),
            blob: hex(toBytes(blob, 'blob')),
            nonce_offset: nonceOffset as number,
            difficulty: String(difficulty),
            start_nonce: startNonce,
            count,
            ...jobOptions(svc.engine, options),
          },
          owner,
        );
      },
    },
    {
      name: 'Benchmark',
      access: 'privileged',
      in: [
        ['nonces', 'u'],
        ['options', 'a{sv}'],
      ],
      out: [['task', 'o']],
      handler: async (svc, [nonces, rawOptions], ctx) => {
        const owner = await submitter(ctx);
        const options = unwrapDict(rawOptions);
        checkOptionNames(options, ['mode', 'threads', 'key']);
        return submit(
          svc,
          BENCHMARK_KIND,
          {
            nonces: nonces as number,
            key: options.key === undefined ? null : hex(toBytes(options.key, 'key')),
            ...jobOptions(svc.engine, options),
          },
          owner,
        );
      },
    },
  ],
  properties: [
    { name: 'Mode', type: 's', get: (svc) => svc.engine.defaultMode, change: 'const' },
    { name: 'Threads', type: 'u', get: (svc) => svc.engine.threads, change: 'const' },
    {
      name: 'DatasetState',
      type: 's',
      get: (svc) => svc.engine.properties().datasetState,
      change: 'emits',
    },
    {
      name: 'DatasetKey',
      type: 'ay',
      get: (svc) => svc.engine.properties().datasetKey,
      change: 'emits',
    },
    {
      name: 'Features',
      type: 'as',
      get: (svc) => svc.engine.properties().features,
      change: 'emits',
    },
    {
      name: 'HashRate',
      type: 'd',
      get: (svc) => svc.engine.properties().hashRate,
      change: 'emits',
    },
  ],
  signals: [],
};

export function exportRandomX(server: ObjectServer, service: RandomXService): void {
  server.export(RANDOMX_PATH, [bind(randomXInterface, service)]);
  service.engine.on('changed', (names: string[]) =>
    server.propertiesChanged(RANDOMX_PATH, randomXInterface.name, names),
  );
}
