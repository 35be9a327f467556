import type { WolLogger } from './events';
import type { WolNetwork } from './network';
import type { ProxyClaim, ProxyListener } from './proxy';
import type { WolStore } from './store';
import type { Host, WolWatcher } from './watcher';

/**
 * The sleep proxy (proxy.ts, a state machine inside the watcher) on the real network: its
 * frames go out through the network's captures, each address it takes over is kept in the
 * state database until it is handed back, what a crashed run left taken over is handed back
 * once its interface can send again, and a stop hands every address back before the sockets
 * close.
 */

/** What the sleep proxy sends and claims, wired to the network and the state database. */
export function proxyOutput(
  network: WolNetwork,
  store: WolStore | undefined,
  log: WolLogger,
  now: () => number,
  proxyingChanged: (host: Host) => void,
): ProxyListener {
  return {
    send: (iface, frame) => network.send(iface, frame),
    claimed: (claim) => store?.saveClaim(claim, now()),
    released: (claim) => store?.deleteClaim(claim),
    proxyingChanged,
    log: (level, message) => log[level](message),
  };
}

/** A stop's hand-back announcements go out again after this pause, within the stop budget. */
const STOP_REPEAT_MS = 200;

export class ProxyDriver {
  /** Claims a previous run left that could not be handed back yet (no capture on their interface). */
  private leftovers: ProxyClaim[] = [];

  constructor(
    private readonly watcher: WolWatcher,
    private readonly network: WolNetwork,
    private readonly store: WolStore | undefined,
    private readonly log: WolLogger,
  ) {}

  /** At start: a previous run that died while proxying left addresses pointing at this machine. */
  recoverLeftovers(): void {
    this.leftovers = this.store?.loadClaims() ?? [];
    this.returnLeftovers(true);
  }

  /** The captures changed: hand back the leftovers whose interface can send now. */
  retryLeftovers(): void {
    if (this.leftovers.length > 0) this.returnLeftovers(false);
  }

  /**
   * Hand back what a previous run took over, on every interface that can send now; the rest
   * waits for a capture on its interface (said once, at start).
   */
  private returnLeftovers(atStart: boolean): void {
    if (this.leftovers.length === 0) return;
    const ready = this.leftovers.filter((c) => this.network.canSendOn(c.interface));
    const waiting = this.leftovers.filter((c) => !this.network.canSendOn(c.interface));
    const left = this.watcher.recoverClaims(ready);
    this.leftovers = [...waiting, ...left];
    if (!atStart) return;
    for (const c of this.leftovers) {
      this.log.warning(
        `Wake-on-LAN: cannot hand ${c.address} back to ${c.hostName} yet: no capture on ${c.interface}`,
      );
    }
  }

  /** Without CAP_NET_RAW nothing can be answered: say so, naming those of `hosts` with proxy on. */
  warnUnavailable(hosts: readonly Host[]): void {
    const proxied = hosts.filter((h) => h.spec.proxy);
    if (this.network.available || proxied.length === 0) return;
    this.log.warning(
      `Wake-on-LAN sleep proxy unavailable: answering for ${proxied.map((h) => h.spec.name).join(', ')} ` +
        'needs CAP_NET_RAW; they are woken as hosts without proxy would be (by hand only)',
    );
  }

  /** The daemon stops: hand every proxied address back, announced twice a little apart. */
  async handBackAll(): Promise<void> {
    const repeats = this.watcher.stopProxy();
    if (repeats.length === 0) return;
    await new Promise((r) => setTimeout(r, STOP_REPEAT_MS));
    for (const { iface, frame } of repeats) this.network.send(iface, frame);
  }
}
