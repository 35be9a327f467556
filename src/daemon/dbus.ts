import type { InterfaceSpec } from '../bus/interface';
import { IFACE_PREFIX } from '../bus/names';
import { usec } from '../bus/time';

export interface DaemonInfo {
  version: string;
  startTime: number;
  /** Empty, or why vigil runs degraded (e.g. the task history cannot be written). */
  readonly degraded: string;
  /** Re-read and apply the config file; throws a VigilError when it is refused. */
  reload(why: string): void;
}

/** `org.vigil.Vigil1.Daemon` at the root object: what is running and since when. */
export const daemonInterface: InterfaceSpec<DaemonInfo> = {
  name: `${IFACE_PREFIX}Daemon`,
  methods: [
    {
      name: 'Reload',
      access: 'privileged',
      in: [],
      out: [],
      handler: async (d, _args, { caller }) => d.reload(`asked by uid ${await caller.uid()}`),
    },
  ],
  properties: [
    { name: 'Version', type: 's', get: (d) => d.version, change: 'const' },
    { name: 'StartTime', type: 't', get: (d) => usec(d.startTime), change: 'const' },
    { name: 'Degraded', type: 's', get: (d) => d.degraded, change: 'emits' },
  ],
  signals: [],
};
