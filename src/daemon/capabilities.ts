/**
 * The composition root's one list: every capability vigild serves, in start order. Adding a
 * capability means one import and one entry here; the daemon, `scripts/gen-introspection`
 * and the tests all read this list.
 */
import { randomDataCapability } from '../randomdata/capability';
import { randomxCapability } from '../randomx/capability';
import { tasksCapability } from '../tasks/capability';
import { wakeOnLanCapability } from '../wol/capability';
import type { CapabilityModule } from './capability';
import { daemonObjectCapability } from './daemon-object';

export const CAPABILITIES: readonly CapabilityModule[] = [
  daemonObjectCapability,
  tasksCapability,
  randomDataCapability,
  randomxCapability,
  wakeOnLanCapability,
];
