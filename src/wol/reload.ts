import { messageOf } from '../core/errors';
import { formatWakePort } from './config';
import type { HostProperty } from './events';
import { WolWatcher, type Host, type HostSpec } from './watcher';

/**
 * What a config reload does to the watched hosts, worked out before anything changes so that
 * a refused reload changes nothing: hosts gone from the file stop being watched, new ones are
 * watched, the others change in place (their bus objects stay) and say which properties
 * changed. A changed MAC makes a new host (a Host's `Mac` is const). Hosts added over D-Bus
 * stay, except where the file takes their name (the file wins, as at start). Every host kept
 * in the state database after AddHost that is not watched is tried again whenever its name is
 * free: when the file drops that name, or when what kept it away at start or at an earlier
 * reload (a clash with a file host) is gone. One that still cannot be watched does not refuse
 * the reload: the file is not at fault, and the error is logged instead.
 */

/** What a config reload did to the hosts, by name (a changed MAC counts as changed). */
export interface ConfigHostsChange {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

export interface ReloadPlan {
  /** Hosts to stop watching: the file's that went or got a new MAC, D-Bus hosts it now names. */
  readonly gone: readonly Host[];
  /** Hosts of the file to start watching (new names, and replacements of the gone). */
  readonly added: readonly HostSpec[];
  /** Hosts that stay, with their new settings and the properties that change. */
  readonly changed: readonly { readonly spec: HostSpec; readonly props: HostProperty[] }[];
  /** Hosts kept in the state database after AddHost that come back: their name is free. */
  readonly restored: readonly HostSpec[];
  /** Those whose name is free but that cannot be watched (the error says why). */
  readonly unrestorable: readonly { readonly name: string; readonly error: string }[];
  readonly change: ConfigHostsChange;
}

export interface ReloadContext {
  /** The hosts watched now. */
  readonly current: readonly Host[];
  /** Throws when the service refuses the host (e.g. on an interface that is not watched). */
  readonly check: (spec: HostSpec) => void;
  /** The hosts kept in the state database after AddHost, by name, each checked when built. */
  readonly busHosts: ReadonlyMap<string, () => HostSpec>;
}

/** The Host properties that differ between two settings of one host. */
export function changedHostProperties(from: HostSpec, to: HostSpec): HostProperty[] {
  const props: HostProperty[] = [];
  const ranges = (s: HostSpec['onlyFrom']): string => s.map((r) => r.text).join(',');
  if (from.ip !== to.ip) props.push('Ip');
  if (from.interface !== to.interface) props.push('Interface');
  if (ranges(from.onlyFrom) !== ranges(to.onlyFrom)) props.push('OnlyFrom');
  if (from.timeout !== to.timeout) props.push('Timeout');
  if (from.cooldown !== to.cooldown) props.push('Cooldown');
  if (from.ip6.join() !== to.ip6.join()) props.push('Ip6');
  if (ranges(from.ignoreFrom) !== ranges(to.ignoreFrom)) props.push('IgnoreFrom');
  if (from.proxy !== to.proxy) props.push('Proxy');
  if (from.wakePorts.map(formatWakePort).join() !== to.wakePorts.map(formatWakePort).join()) {
    props.push('WakePorts');
  }
  return props;
}

/** Plan a reload to the file's hosts `specs`; throws (InvalidArgument) when it must be refused. */
export function planReload(specs: readonly HostSpec[], context: ReloadContext): ReloadPlan {
  const wanted = new Map(specs.map((s) => [s.name, s]));
  const current = new Map(context.current.map((h) => [h.spec.name, h]));
  // A D-Bus host stays unless the file takes its name; a file host stays if its MAC does.
  const stays = (h: Host): boolean =>
    h.spec.source === 'bus'
      ? !wanted.has(h.spec.name)
      : wanted.get(h.spec.name)?.mac === h.spec.mac;
  const gone = [...current.values()].filter((h) => !stays(h));
  const added = specs.filter((s) => {
    const host = current.get(s.name);
    return host === undefined || !stays(host);
  });
  const changed = specs.flatMap((spec) => {
    const host = current.get(spec.name);
    const props = host && stays(host) ? changedHostProperties(host.spec, spec) : [];
    return props.length > 0 ? [{ spec, props }] : [];
  });
  // Everything that will be watched, tried on a scratch watcher first: a clash refuses the lot.
  const trial = new WolWatcher({ wake: () => {}, stateChanged: () => {}, seen: () => {} });
  for (const h of current.values()) if (h.spec.source === 'bus' && stays(h)) trial.addHost(h.spec);
  for (const spec of specs) {
    context.check(spec);
    trial.addHost(spec);
  }
  // The D-Bus hosts whose name is free after the reload come back, if they fit.
  const taken = new Set([
    ...specs.map((s) => s.name),
    ...[...current.values()]
      .filter((h) => h.spec.source === 'bus' && stays(h))
      .map((h) => h.spec.name),
  ]);
  const restored: HostSpec[] = [];
  const unrestorable: { name: string; error: string }[] = [];
  for (const [name, build] of context.busHosts) {
    if (taken.has(name)) continue;
    try {
      const spec = build();
      context.check(spec);
      trial.addHost(spec);
      restored.push(spec);
    } catch (e) {
      unrestorable.push({ name, error: messageOf(e) });
    }
  }
  const back = new Set(restored.map((s) => s.name));
  return {
    gone,
    added,
    changed,
    restored,
    unrestorable,
    change: {
      added: [...added, ...restored].filter((s) => !current.has(s.name)).map((s) => s.name),
      removed: gone
        .filter((h) => !wanted.has(h.spec.name) && !back.has(h.spec.name))
        .map((h) => h.spec.name),
      changed: [
        ...changed.map((c) => c.spec.name),
        ...added.filter((s) => current.has(s.name)).map((s) => s.name),
        ...restored.filter((s) => current.has(s.name)).map((s) => s.name),
      ],
    },
  };
}
