/** `org.vigil.Vigil1.RandomX`: the thin translation between the bus and the engine. */
import { bind, type InterfaceSpec } from '../bus/interface';
import { IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import type { ObjectServer } from '../bus/server';
import { unwrapDict } from '../bus/values';
import { submitter, taskPath } from '../tasks/dbus';
import type { TaskManager } from '../tasks/manager';
import type { Submitter } from '../tasks/types';
import type { RandomXEngine } from './engine';
import { BATCH_KIND, BENCHMARK_KIND, SEARCH_KIND } from './kinds';
import {
  batchArgs,
  benchmarkArgs,
  benchmarkToJson,
  hashArgs,
  searchArgs,
  searchToJson,
} from './params';
import { LIMITS } from './validate';

export const RANDOMX_PATH = `${ROOT_PATH}/RandomX`;

export interface RandomXService {
  engine: RandomXEngine;
  manager: TaskManager;
}

async function submit(
  svc: RandomXService,
  kind: string,
  params: unknown,
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
      // Two lengths, the bytes, the padding between them.
      maxBodyBytes: 16 + LIMITS.maxKeyBytes + LIMITS.maxInputBytes,
      heavy: true,
      handler: (svc, [key, input]) => {
        const args = hashArgs(key, input);
        return svc.engine.hash(args.key, args.input);
      },
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
      // The key, every input's length and padding (8 bytes at most), the inputs, the options.
      maxBodyBytes:
        LIMITS.maxKeyBytes + LIMITS.maxBatchInputs * 8 + LIMITS.maxBatchBytes + 64 * 1024,
      heavy: true,
      handler: async (svc, [key, inputs, rawOptions], ctx) => {
        const params = batchArgs(key, inputs, unwrapDict(rawOptions), svc.engine);
        return submit(svc, BATCH_KIND, params, await submitter(ctx));
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
        const options = unwrapDict(rawOptions);
        const params = searchArgs(key, blob, nonceOffset, difficulty, options, svc.engine);
        return submit(svc, SEARCH_KIND, searchToJson(params), await submitter(ctx));
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
        const params = benchmarkArgs(nonces, unwrapDict(rawOptions), svc.engine);
        return submit(svc, BENCHMARK_KIND, benchmarkToJson(params), await submitter(ctx));
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
    {
      name: 'HugePageCoverage',
      type: 'd',
      get: (svc) => svc.engine.properties().hugePageCoverage,
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
