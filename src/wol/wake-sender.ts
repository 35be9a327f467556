import { invalidArgument, messageOf, VigilError } from '../core/errors';
import { normalizeMac, parseMac } from './addresses';
import type { WakeSentEvent, WolLogger } from './events';
import type { WolNetwork } from './network';
import type { WolStore } from './store';
import type { WakeDecision, WolWatcher } from './watcher';

/**
 * Magic packets out: those the watcher decides on (sent, logged, counted and persisted with the
 * host's counters) and those asked for by hand, by host name or by a MAC nobody watches (sent
 * on every interface that can take it). Only a manual wake has a caller to tell of a failure.
 */

export interface WakeSenderOptions {
  readonly watcher: WolWatcher;
  readonly network: WolNetwork;
  readonly store: WolStore | undefined;
  readonly log: WolLogger;
  /** The watched interfaces: a MAC nobody watches is woken on each. */
  readonly interfaces: () => string[];
  /** A magic packet went out. */
  readonly sent: (event: WakeSentEvent) => void;
}

export class WakeSender {
  /** Magic packets sent since start (the WakeOnLan object's WakesSent). */
  count = 0;
  private readonly pending = new Map<WakeDecision, Promise<void>>();
  /** Failures of manual wakes, until wake() tells its caller. */
  private readonly failed = new Map<WakeDecision, string>();

  constructor(private readonly options: WakeSenderOptions) {}

  /** The watcher decided to wake a host: send, and keep the send until it settles. */
  send(decision: WakeDecision): void {
    const promise = this.sendWake(decision).finally(() => this.pending.delete(decision));
    this.pending.set(decision, promise);
  }

  /**
   * Manual wake by host name or MAC. A MAC nobody watches is woken on every watched interface
   * (or every interface with IPv4 when none is watched).
   */
  async wake(nameOrMac: string): Promise<void> {
    const { watcher, network } = this.options;
    const byName = watcher.host(nameOrMac);
    if (byName) {
      const decision = watcher.wakeManually(byName.spec.name);
      await this.pending.get(decision)?.catch(() => undefined);
      const error = this.failed.get(decision);
      this.failed.delete(decision);
      if (error) throw new VigilError('Failed', `cannot send the magic packet: ${error}`);
      return;
    }
    if (!parseMac(nameOrMac)) {
      if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(nameOrMac)) {
        throw new VigilError('NotFound', `no host named "${nameOrMac}"`);
      }
      throw invalidArgument(`"${nameOrMac}" is neither a watched host name nor a MAC address`);
    }
    const mac = normalizeMac(nameOrMac);
    const known = watcher.hostsByMac(mac)[0];
    if (known) return this.wake(known.spec.name);
    if (!network.opened) throw new VigilError('Failed', 'the Wake-on-LAN watcher is not started');
    let targets = this.options.interfaces();
    if (targets.length === 0) targets = network.interfacesWithIpv4();
    if (targets.length === 0)
      throw new VigilError('Failed', 'no interface to send the magic packet on');
    const errors: string[] = [];
    for (const iface of targets) {
      try {
        await network.sendMagic(mac, iface);
        this.counted({ name: '', mac, requesterIp: '', reason: 'manual' }, iface);
      } catch (e) {
        errors.push(`${iface}: ${messageOf(e)}`);
      }
    }
    if (errors.length === targets.length) {
      throw new VigilError('Failed', `cannot send the magic packet: ${errors.join('; ')}`);
    }
  }

  private async sendWake(decision: WakeDecision): Promise<void> {
    const { host } = decision;
    const { network, log, store } = this.options;
    try {
      await network.sendMagic(host.spec.mac, decision.interface);
      const forWhom =
        decision.reason === 'manual'
          ? 'on request'
          : `for ${decision.requesterIp} (${decision.requesterMac})`;
      log.info(`Waking ${host.spec.name} (${host.spec.mac}) ${forWhom} on ${decision.interface}`);
      this.counted(
        {
          name: host.spec.name,
          mac: host.spec.mac,
          requesterIp: decision.requesterIp,
          reason: decision.reason,
        },
        decision.interface,
      );
      store?.saveStats(host.spec.name, host.status);
    } catch (e) {
      // Only a manual wake has a caller to tell (wake() takes the entry); an ARP-caused one
      // kept here would stay forever, one per failed send.
      if (decision.reason === 'manual') this.failed.set(decision, messageOf(e));
      log.error(`Wake-on-LAN: cannot wake ${host.spec.name}: ${messageOf(e)}`);
    }
  }

  private counted(event: WakeSentEvent, iface: string): void {
    this.count++;
    if (event.name === '') this.options.log.info(`Waking ${event.mac} on request on ${iface}`);
    this.options.sent(event);
  }
}
