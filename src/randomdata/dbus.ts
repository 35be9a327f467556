import { bind, type InterfaceSpec } from '../bus/interface';
import { IFACE_PREFIX, ROOT_PATH } from '../bus/names';
import type { ObjectServer } from '../bus/server';
import { submitter } from '../tasks/dbus';
import type { TaskManager } from '../tasks/manager';
import { quickRandom, SLOW_KIND } from './random';

export const RANDOM_DATA_PATH = `${ROOT_PATH}/RandomData`;

/** What the RandomData interface calls into. */
export interface RandomDataService {
  manager: TaskManager;
  paceMs: number;
}

/** The classic tutorial interface: same member names and signatures, lower-case and all. */
export const randomDataInterface: InterfaceSpec<RandomDataService> = {
  name: `${IFACE_PREFIX}RandomData`,
  methods: [
    {
      name: 'quick',
      access: 'anyone',
      in: [['bits', 'i']],
      out: [['result', 's']],
      handler: (_svc, [bits]) => quickRandom(bits as number),
    },
    {
      name: 'slow',
      access: 'anyone',
      in: [['bits', 'i']],
      out: [['id', 's']],
      handler: async (svc, [bits], ctx) => {
        const params = { bits: bits as number, paceMs: svc.paceMs };
        return svc.manager.submit(SLOW_KIND, params, await submitter(ctx)).id;
      },
    },
  ],
  properties: [],
  signals: [
    {
      name: 'slow_result',
      args: [
        ['id', 's'],
        ['result', 's'],
      ],
    },
  ],
};

export function exportRandomData(server: ObjectServer, service: RandomDataService): void {
  server.export(RANDOM_DATA_PATH, [bind(randomDataInterface, service)]);
  // slow_result is the tutorial's completion signal: sent once, when a slow task completes.
  service.manager.on('added', (task) => {
    if (task.kind.name !== SLOW_KIND) return;
    task.once('finished', (state, result) => {
      if (state !== 'completed') return;
      server.signal(RANDOM_DATA_PATH, randomDataInterface, 'slow_result', [
        task.id,
        String(result.result?.value ?? ''),
      ]);
    });
  });
}
