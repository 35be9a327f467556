import type { InterfaceSpec } from '../bus/interface';
import { IFACE_PREFIX } from '../bus/names';
import { usec } from '../bus/time';

export interface DaemonInfo {
  version: string;
  startTime: number;
  /** Empty, or why vigil runs degraded (e.g. the task history cannot be written). */
  readonly degraded: string;
}

/** `org.vigil.Vigil1.Daemon` at the root object: what is running and since when. */
export const daemonInterface: InterfaceSpec<DaemonInfo> = {
  name: `${IFACE_PREFIX}Daemon`,
  methods: [],
  properties: [
    { name: 'Version', type: 's', get: (d) => d.version, change: 'const' },
    { name: 'StartTime', type: 't', get: (d) => usec(d.startTime), change: 'const' },
    { name: 'Degraded', type: 's', get: (d) => d.degraded, change: 'emits' },
  ],
  signals: [],
};
