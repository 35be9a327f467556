import type { Host } from './watcher';

/**
 * What the Wake-on-LAN service tells the world: the events the bus layer turns into
 * PropertiesChanged, InterfacesAdded/Removed and WakeSent, and the log it writes. Kept apart
 * so the parts of the service (network, wakes, sleep proxy, reload) share them without
 * importing the service itself.
 */

/** What the service logs through (winston's logger has this shape). */
export interface WolLogger {
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

/** Properties of the WakeOnLan object whose changes are announced. */
export type ServiceProperty = 'Interfaces' | 'WakesSent' | 'Available';

/** Properties of a Host object. */
export type HostProperty =
  | 'State'
  | 'LastSeen'
  | 'LastWake'
  | 'WakeCount'
  | 'LastWakeDuration'
  | 'LastWakeReason'
  | 'Ip6'
  | 'Proxying'
  | 'Ip'
  | 'Interface'
  | 'OnlyFrom'
  | 'Timeout'
  | 'Cooldown'
  | 'IgnoreFrom'
  | 'Proxy'
  | 'WakePorts';

/** A magic packet that went out: the WakeSent signal (`name` empty for a MAC nobody watches). */
export interface WakeSentEvent {
  readonly name: string;
  readonly mac: string;
  readonly requesterIp: string;
  readonly reason: string;
}

export interface ServiceEvents {
  hostAdded: [Host];
  hostRemoved: [Host];
  hostChanged: [Host, HostProperty[]];
  changed: [ServiceProperty[]];
  wakeSent: [WakeSentEvent];
}
