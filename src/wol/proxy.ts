import {
  ip6Key,
  isLinkLocal6,
  isUnspecified6,
  parseMac,
  samePrefix,
  solicitedNode,
} from './addresses';
import type { ArpFrame, NdpFrame } from './frames';
import { arpFrame, multicastMac6, ndpFrame } from './packets';
import type { Host } from './watcher';

/**
 * The sleep proxy as a state machine, in the manner of Apple's Bonjour Sleep Proxy: while a
 * host with `proxy` on sleeps, vigil answers ARP and Neighbor Solicitations for its addresses
 * with its own MAC, so that traffic meant for the host reaches vigil, which inspects it (the
 * watcher decides whether it means "wake up"). No sockets and no timers here: frames and clock
 * ticks come in, frames to send and claims to persist go out through the listener.
 *
 * Per host: offline → probing (an echo, an ARP probe and an NS for every address; whatever
 * answers is not taken over) → proxying (announced twice a second apart, answered) → handed
 * back the moment the host is seen (announcements with its real MAC, and a direct reply to
 * every requester answered meanwhile), or when it is removed, reconfigured or vigil stops.
 */

/** How long the probes get to be answered before the addresses are taken over. */
export const PROBE_MS = 1000;
/** Probes sent per address while probing, this far apart. */
export const PROBES = 2;
export const PROBE_INTERVAL_MS = 500;
/** Each take-over and hand-back is announced twice, a second apart (ARP's 1 s locktime). */
export const ANNOUNCEMENTS = 2;
export const ANNOUNCE_INTERVAL_MS = 1000;
/** Answers per second per interface (burst as large), and at most one per 100 ms per requester and address. */
export const ANSWERS_PER_SECOND = 100;
export const ANSWER_INTERVAL_MS = 100;
/** Announcements per second per interface (burst twice that). */
export const ANNOUNCEMENTS_PER_SECOND = 100;
/** Requesters remembered per host for the direct hand-back replies (the oldest is forgotten). */
export const MAX_REQUESTERS = 64;
/**
 * A host that wakes may be running duplicate address detection on its IPv6 addresses, and an
 * advertisement of a tentative address (even with its own MAC) makes DAD fail. So the
 * all-nodes advertisement of a hand-back waits this long, and longer after a DAD probe by the
 * host for that address (RFC 4862: one probe, one second); requesters get theirs at once.
 */
export const DAD_GRACE_MS = 2000;
export const DAD_WAIT_MS = 1500;

const ALL_NODES = Buffer.from('ff020000000000000000000000000001', 'hex');

/** One address of a host, as the proxy and the watcher's maps know it. */
export interface ProxyAddress {
  readonly family: 4 | 6;
  readonly text: string;
  /** `4|<32-bit value>` or `6|<hex>`: the same key the watcher's address maps use. */
  readonly key: string;
  /** IPv4: the 32-bit value (and `bytes` empty); IPv6: the 16 bytes. */
  readonly value: number;
  readonly bytes: Buffer;
}

export const v4Key = (value: number): string => `4|${value >>> 0}`;
export const v6Key = (bytes: Buffer, offset = 0): string => `6|${ip6Key(bytes, offset)}`;

/** What the proxy must know about one of this machine's interfaces. */
export interface InterfaceState {
  /** This machine's MAC on the interface (answers carry it); none: no Ethernet, no proxy. */
  readonly mac: string | undefined;
  /** Its IPv6 addresses with prefix lengths (the source of NS probes; which prefixes are on-link). */
  readonly ipv6: readonly { readonly bytes: Buffer; readonly prefix: number }[];
  /** The kernel forwards IPv4 arriving here: traffic for a proxied address would be routed on. */
  readonly ipv4Forwarding: boolean;
  readonly ipv6Forwarding: boolean;
  /** IPv6 is off on the interface: the kernel drops every IPv6 packet, so none is answered. */
  readonly ipv6Disabled: boolean;
}

/** An address vigil answers for, kept in the state database until handed back. */
export interface ProxyClaim {
  readonly interface: string;
  readonly address: string;
  readonly hostName: string;
  readonly hostMac: string;
}

export interface ProxyListener {
  send(iface: string, frame: Buffer): void;
  claimed(claim: ProxyClaim): void;
  released(claim: ProxyClaim): void;
  proxyingChanged(host: Host): void;
  log(level: 'info' | 'warning' | 'debug', message: string): void;
}

/** What became of an ARP request or NS about a proxied address. */
export type ProxyVerdict = 'answered' | 'quiet' | undefined;

interface Requester {
  readonly mac: Buffer;
  /** IPv4 value or IPv6 bytes. */
  readonly ip: number | Buffer;
}

interface SessionAddress extends ProxyAddress {
  /** `released` once the session ends: a queued take-over repeat must not go out then. */
  state: 'probing' | 'taken' | 'conflict' | 'released';
}

interface Session {
  readonly host: Host;
  readonly iface: string;
  readonly ownMac: Buffer;
  readonly hostMac: Buffer;
  phase: 'probing' | 'proxying';
  readonly decideAt: number;
  probesSent: number;
  nextProbe: number;
  readonly addresses: Map<string, SessionAddress>;
  /** By `mac|address key`, oldest first. */
  readonly requesters: Map<string, Requester & { readonly address: SessionAddress }>;
}

interface Queued {
  readonly due: number;
  readonly iface: string;
  readonly frame: Buffer;
  /** Still to be sent only while this is true (a take-over repeat stops once handed back). */
  readonly valid: () => boolean;
  /** When set, the earliest moment it may go (it waits for the host's DAD). */
  readonly notBefore?: () => number;
}

class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

export class SleepProxy {
  private readonly sessions = new Map<string, Session>();
  private readonly byAddress = new Map<string, { session: Session; address: SessionAddress }>();
  /** Hosts not to probe again until seen: every address was answered or claimed by another MAC. */
  private readonly held = new Map<string, string>();
  /** The last reason logged for not proxying a host, so it is logged once, not every tick. */
  private readonly blocked = new Map<string, string>();
  private readonly interfaces = new Map<string, InterfaceState>();
  private readonly answerBuckets = new Map<string, TokenBucket>();
  private readonly announceBuckets = new Map<string, TokenBucket>();
  private readonly lastAnswer = new Map<string, number>();
  private queue: Queued[] = [];
  /** When the host last probed an address (DAD), by `iface|key`. */
  private readonly dadSeen = new Map<string, number>();
  answersSent = 0;
  answersLimited = 0;

  constructor(private readonly listener: ProxyListener) {}

  setInterface(iface: string, state: InterfaceState): void {
    this.interfaces.set(iface, state);
  }

  interfaceMac(iface: string): string | undefined {
    return this.interfaces.get(iface)?.mac;
  }

  /** Whether a session (probing or proxying) runs for the host. */
  active(host: Host): boolean {
    return this.sessions.has(host.spec.name);
  }

  /** The host an address is taken over for (answered, its traffic inspected), if any. */
  takenFor(iface: string, key: string): Host | undefined {
    const entry = this.byAddress.get(`${iface}|${key}`);
    return entry?.address.state === 'taken' ? entry.session.host : undefined;
  }

  /**
   * A host with `proxy` on is offline (or waking): start probing its addresses unless a
   * session runs, it is held, or nothing can be proxied safely. True when probing started,
   * so the caller sends the echo that goes with the probes.
   */
  consider(host: Host, addresses: readonly ProxyAddress[], now: number): boolean {
    const name = host.spec.name;
    if (this.sessions.has(name) || this.held.has(name)) return false;
    const iface = host.spec.interface;
    const state = this.interfaces.get(iface);
    const ownMac = state?.mac ? parseMac(state.mac) : undefined;
    if (!state || !ownMac) {
      this.block(host, `this machine has no Ethernet address on ${iface}`);
      return false;
    }
    const safe: ProxyAddress[] = [];
    const unsafe: string[] = [];
    for (const a of addresses) {
      const why = this.unsafe(iface, state, a);
      if (why) unsafe.push(`${a.text} (${why})`);
      else safe.push(a);
    }
    if (safe.length === 0) {
      this.block(host, `not answering for any address: ${unsafe.join(', ')}`);
      return false;
    }
    if (unsafe.length) this.block(host, `not answering for ${unsafe.join(', ')}`);
    else this.blocked.delete(name);
    const session: Session = {
      host,
      iface,
      ownMac,
      hostMac: parseMac(host.spec.mac) ?? Buffer.alloc(6),
      phase: 'probing',
      decideAt: now + PROBE_MS,
      probesSent: 0,
      nextProbe: now,
      addresses: new Map(),
      requesters: new Map(),
    };
    for (const a of safe) {
      const address: SessionAddress = { ...a, state: 'probing' };
      session.addresses.set(a.key, address);
      this.byAddress.set(`${iface}|${a.key}`, { session, address });
    }
    this.sessions.set(name, session);
    this.listener.log(
      'debug',
      `Wake-on-LAN: ${name} is offline; probing ${safe.map((a) => a.text).join(', ')} before answering for it`,
    );
    this.probe(session, now);
    return true;
  }

  private unsafe(iface: string, state: InterfaceState, a: ProxyAddress): string | undefined {
    if (a.family === 4) {
      return state.ipv4Forwarding
        ? `IPv4 forwarding is on for ${iface}: the kernel would route its traffic on`
        : undefined;
    }
    if (state.ipv6Disabled) return undefined;
    if (state.ipv6Forwarding) {
      return `IPv6 forwarding is on for ${iface}: the kernel would route its traffic on`;
    }
    if (isLinkLocal6(a.bytes)) return undefined;
    const onLink = state.ipv6.some((own) => samePrefix(own.bytes, a.bytes, own.prefix));
    return onLink
      ? undefined
      : `not on a prefix of ${iface}: the kernel would answer its traffic with ICMPv6 errors`;
  }

  private block(host: Host, why: string): void {
    if (this.blocked.get(host.spec.name) === why) return;
    this.blocked.set(host.spec.name, why);
    this.listener.log('warning', `Wake-on-LAN: sleep proxy for ${host.spec.name}: ${why}`);
  }

  private probe(session: Session, now: number): void {
    session.probesSent++;
    session.nextProbe = now + PROBE_INTERVAL_MS;
    const state = this.interfaces.get(session.iface);
    const ownLinkLocal = state?.ipv6.find((a) => isLinkLocal6(a.bytes))?.bytes;
    for (const a of session.addresses.values()) {
      if (a.state !== 'probing') continue;
      if (a.family === 4) {
        // An RFC 5227 probe: sender 0.0.0.0, so no cache on the LAN learns anything from it.
        this.sendNow(
          session.iface,
          arpFrame({ op: 'request', sourceMac: session.ownMac, senderIp: 0, targetIp: a.value }),
        );
      } else if (ownLinkLocal) {
        // From our link-local address: a resolution, which a tentative address ignores (a
        // probe from :: would make a host running DAD give the address up). Without one,
        // IPv6 is off here and the echo alone must do.
        const group = solicitedNode(a.bytes);
        this.sendNow(
          session.iface,
          ndpFrame({
            type: 'ns',
            sourceMac: session.ownMac,
            destinationMac: multicastMac6(group),
            sourceIp: ownLinkLocal,
            destinationIp: group,
            target: a.bytes,
            linkAddress: session.ownMac,
          }),
        );
      }
    }
  }

  /** Advance the clock: probe again, take over what went unanswered, send queued repeats. */
  tick(now: number): void {
    for (const session of [...this.sessions.values()]) {
      if (session.phase !== 'probing') continue;
      if (now >= session.decideAt) this.takeOver(session, now);
      else if (session.probesSent < PROBES && now >= session.nextProbe) this.probe(session, now);
    }
    // Forget what no longer limits anything, so a flood of requesters cannot grow these maps.
    for (const [key, at] of this.dadSeen) if (now - at > DAD_WAIT_MS) this.dadSeen.delete(key);
    for (const [key, at] of this.lastAnswer) {
      if (now - at >= ANSWER_INTERVAL_MS) this.lastAnswer.delete(key);
    }
    if (this.queue.length === 0) return;
    const due = this.queue.filter((q) => q.due <= now);
    this.queue = this.queue.filter((q) => q.due > now);
    for (const q of due) {
      if (!q.valid()) continue;
      const wait = q.notBefore?.() ?? 0;
      if (wait > now) this.queue.push({ ...q, due: wait });
      else this.announce(q.iface, q.frame, now);
    }
  }

  /** Entries kept for rate limiting and DAD (bounded by the tick; for tests). */
  get trackedEntries(): number {
    return this.lastAnswer.size + this.dadSeen.size;
  }

  private takeOver(session: Session, now: number): void {
    const name = session.host.spec.name;
    const taken = [...session.addresses.values()].filter((a) => a.state === 'probing');
    if (taken.length === 0) {
      this.endSession(session);
      this.held.set(name, 'every address answered');
      this.listener.log(
        'warning',
        `Wake-on-LAN: not answering for ${name}: another machine answers for each of its addresses`,
      );
      return;
    }
    session.phase = 'proxying';
    for (const a of taken) {
      a.state = 'taken';
      this.listener.claimed(this.claim(session, a));
      this.announceTwice(session, a, session.ownMac, now, () => a.state === 'taken');
    }
    session.host.status.proxying = true;
    this.listener.proxyingChanged(session.host);
    this.listener.log(
      'info',
      `Wake-on-LAN: ${name} sleeps; answering for ${taken.map((a) => a.text).join(', ')} on ${session.iface}`,
    );
  }

  private claim(session: Session, a: ProxyAddress): ProxyClaim {
    return {
      interface: session.iface,
      address: a.text,
      hostName: session.host.spec.name,
      hostMac: session.host.spec.mac,
    };
  }

  /** Gratuitous ARP or an unsolicited NA (Override) saying `a` is at `mac`; now and a second later. */
  private announceTwice(
    session: Session,
    a: ProxyAddress,
    mac: Buffer,
    now: number,
    valid: () => boolean,
  ): void {
    const frame = announcement(session.ownMac, mac, a);
    this.announce(session.iface, frame, now);
    for (let i = 1; i < ANNOUNCEMENTS; i++) {
      this.queue.push({ due: now + i * ANNOUNCE_INTERVAL_MS, iface: session.iface, frame, valid });
    }
  }

  private announce(iface: string, frame: Buffer, now: number): void {
    let bucket = this.announceBuckets.get(iface);
    if (!bucket) {
      bucket = new TokenBucket(ANNOUNCEMENTS_PER_SECOND, ANNOUNCEMENTS_PER_SECOND * 2, now);
      this.announceBuckets.set(iface, bucket);
    }
    if (bucket.take(now)) this.sendNow(iface, frame);
  }

  private sendNow(iface: string, frame: Buffer): void {
    this.listener.send(iface, frame);
  }

  /** The host was seen: stop answering and tell the LAN (and every requester) where it really is. */
  seen(host: Host, now: number): void {
    this.held.delete(host.spec.name);
    this.blocked.delete(host.spec.name);
    const session = this.sessions.get(host.spec.name);
    if (session) this.handBack(session, now, `${host.spec.name} is awake`, true);
  }

  /** The host probes one of its IPv6 addresses (duplicate address detection). */
  noteDad(iface: string, key: string, now: number): void {
    this.dadSeen.set(`${iface}|${key}`, now);
  }

  /** Hand back because the host's settings changed or it is no longer watched. */
  end(host: Host, now: number, why: string): void {
    this.held.delete(host.spec.name);
    this.blocked.delete(host.spec.name);
    const session = this.sessions.get(host.spec.name);
    if (session) this.handBack(session, now, why);
  }

  /** The daemon stops: hand every address back. Returns the announcements, to repeat once. */
  stop(now: number): { iface: string; frame: Buffer }[] {
    const repeats: { iface: string; frame: Buffer }[] = [];
    for (const session of [...this.sessions.values()]) {
      repeats.push(...this.handBack(session, now, 'vigil is stopping'));
    }
    this.queue = [];
    return repeats;
  }

  /**
   * Addresses a previous run took over and never handed back (it crashed): announce the
   * host's real MAC for each. Returns the claims that could not be handed back (no MAC yet).
   */
  recover(
    claims: readonly ProxyClaim[],
    addressOf: (text: string) => ProxyAddress | undefined,
    now: number,
  ): ProxyClaim[] {
    const left: ProxyClaim[] = [];
    for (const claim of claims) {
      const ownMac = parseMac(this.interfaces.get(claim.interface)?.mac ?? '');
      const hostMac = parseMac(claim.hostMac);
      const a = addressOf(claim.address);
      if (!ownMac || !hostMac || !a) {
        if (!a) this.listener.released(claim);
        else left.push(claim);
        continue;
      }
      const frame = announcement(ownMac, hostMac, a);
      this.announce(claim.interface, frame, now);
      const iface = claim.interface;
      this.queue.push({
        due: now + ANNOUNCE_INTERVAL_MS,
        iface,
        frame,
        valid: () => this.byAddress.get(`${iface}|${a.key}`)?.address.state !== 'taken',
      });
      this.listener.released(claim);
      this.listener.log(
        'info',
        `Wake-on-LAN: handed ${claim.address} back to ${claim.hostName} (${claim.hostMac}), taken over before vigil last stopped`,
      );
    }
    return left;
  }

  private handBack(
    session: Session,
    now: number,
    why: string,
    hostAwake = false,
  ): { iface: string; frame: Buffer }[] {
    const taken = [...session.addresses.values()].filter((a) => a.state === 'taken');
    const repeats: { iface: string; frame: Buffer }[] = [];
    const iface = session.iface;
    for (const a of taken) {
      const frame = announcement(session.ownMac, session.hostMac, a);
      const key = `${iface}|${a.key}`;
      const valid = (): boolean => this.byAddress.get(key)?.address.state !== 'taken';
      if (a.family === 6 && hostAwake) {
        const notBefore = (): number => (this.dadSeen.get(key) ?? -Infinity) + DAD_WAIT_MS;
        for (let i = 0; i < ANNOUNCEMENTS; i++) {
          const due = now + DAD_GRACE_MS + i * ANNOUNCE_INTERVAL_MS;
          this.queue.push({ due, iface, frame, valid, notBefore });
        }
        continue;
      }
      this.announce(iface, frame, now);
      repeats.push({ iface, frame });
      this.queue.push({ due: now + ANNOUNCE_INTERVAL_MS, iface, frame, valid });
    }
    for (const r of session.requesters.values()) {
      if (r.address.state !== 'taken') continue;
      this.announce(iface, directHandBack(session, r.address, r), now);
    }
    for (const a of taken) this.listener.released(this.claim(session, a));
    const wasProxying = session.phase === 'proxying';
    this.endSession(session);
    if (wasProxying) {
      this.listener.log(
        'info',
        `Wake-on-LAN: ${why}; handed ${taken.map((a) => a.text).join(', ') || 'nothing'} back to ${session.host.spec.mac}`,
      );
    }
    return repeats;
  }

  private endSession(session: Session): void {
    for (const a of session.addresses.values()) {
      a.state = 'released';
      const key = `${session.iface}|${a.key}`;
      if (this.byAddress.get(key)?.session === session) this.byAddress.delete(key);
    }
    this.sessions.delete(session.host.spec.name);
    if (session.host.status.proxying) {
      session.host.status.proxying = false;
      this.listener.proxyingChanged(session.host);
    }
  }

  /** Someone other than the host and us uses a proxied address: that address is theirs. */
  private conflict(
    entry: { session: Session; address: SessionAddress },
    mac: string,
    what: string,
  ): void {
    const { session, address } = entry;
    const name = session.host.spec.name;
    if (address.state === 'conflict') return;
    const wasTaken = address.state === 'taken';
    address.state = 'conflict';
    if (wasTaken) {
      this.listener.released(this.claim(session, address));
      this.listener.log(
        'warning',
        `Wake-on-LAN: address conflict: ${mac} ${what} ${address.text}, which vigil answers for ${name}; no longer answering for it`,
      );
      if (![...session.addresses.values()].some((a) => a.state === 'taken')) {
        session.host.status.proxying = false;
        this.listener.proxyingChanged(session.host);
      }
    } else {
      this.listener.log(
        'warning',
        `Wake-on-LAN: not answering for ${address.text} (${name}): ${mac} ${what} it`,
      );
    }
  }

  private stranger(session: Session, mac: string): boolean {
    return mac !== session.host.spec.mac && mac !== this.interfaces.get(session.iface)?.mac;
  }

  /**
   * An ARP frame on `iface`: conflicts, probe answers, and requests for a proxied address.
   * `targetKey` is the target's address key, when the caller has it already (every frame).
   */
  handleArp(
    iface: string,
    frame: ArpFrame,
    now: number,
    targetKey = v4Key(frame.targetIp),
  ): ProxyVerdict {
    if (this.byAddress.size === 0) return undefined;
    if (frame.senderIp !== 0) {
      const claimant = this.byAddress.get(`${iface}|${v4Key(frame.senderIp)}`);
      if (claimant && this.stranger(claimant.session, frame.senderMac)) {
        this.conflict(
          claimant,
          frame.senderMac,
          frame.op === 'reply' ? 'answers for' : 'announces',
        );
      }
    }
    if (frame.op !== 'request') return undefined;
    const entry = this.byAddress.get(`${iface}|${targetKey}`);
    if (!entry) return undefined;
    const { session, address } = entry;
    if (address.state !== 'taken') return 'quiet';
    // Never our own kernel (it would cache our MAC for the host), never the host itself.
    if (!this.stranger(session, frame.sourceMac) || !this.stranger(session, frame.senderMac)) {
      return 'quiet';
    }
    if (frame.senderIp === frame.targetIp) return 'quiet';
    const requesterMac = parseMac(frame.senderMac) ?? Buffer.alloc(6);
    if (!this.mayAnswer(iface, frame.senderMac, address, now)) return 'quiet';
    // A probe (sender 0.0.0.0) is answered too, as the host would: the address is in use.
    this.sendNow(
      iface,
      arpFrame({
        op: 'reply',
        sourceMac: session.ownMac,
        senderIp: address.value,
        targetMac: requesterMac,
        targetIp: frame.senderIp,
        destinationMac: requesterMac,
      }),
    );
    if (frame.senderIp !== 0) this.remember(session, address, requesterMac, frame.senderIp);
    return 'answered';
  }

  /** A Neighbor Solicitation or Advertisement: the IPv6 counterpart of handleArp. */
  handleNdp(
    iface: string,
    frame: NdpFrame,
    now: number,
    targetKey = v6Key(frame.target),
  ): ProxyVerdict {
    if (this.byAddress.size === 0) return undefined;
    const linkMac = frame.linkAddress ?? frame.sourceMac;
    if (frame.type === 'na') {
      const claimant = this.byAddress.get(`${iface}|${targetKey}`);
      if (
        claimant &&
        this.stranger(claimant.session, frame.sourceMac) &&
        this.stranger(claimant.session, linkMac)
      ) {
        this.conflict(claimant, linkMac, 'advertises');
      }
      return undefined;
    }
    if (!isUnspecified6(frame.sourceIp)) {
      const claimant = this.byAddress.get(`${iface}|${v6Key(frame.sourceIp)}`);
      if (claimant && this.stranger(claimant.session, frame.sourceMac)) {
        this.conflict(claimant, frame.sourceMac, 'uses');
      }
    }
    const entry = this.byAddress.get(`${iface}|${targetKey}`);
    if (!entry) return undefined;
    const { session, address } = entry;
    if (address.state !== 'taken') return 'quiet';
    if (!this.stranger(session, frame.sourceMac) || !this.stranger(session, linkMac))
      return 'quiet';
    if (!this.mayAnswer(iface, linkMac, address, now)) return 'quiet';
    const dad = isUnspecified6(frame.sourceIp);
    const requesterMac = parseMac(linkMac) ?? Buffer.alloc(6);
    // A DAD probe is answered to all nodes, unsolicited (RFC 4861 7.2.4): the address is in use.
    this.sendNow(
      iface,
      ndpFrame({
        type: 'na',
        sourceMac: session.ownMac,
        destinationMac: dad ? multicastMac6(ALL_NODES) : requesterMac,
        sourceIp: address.bytes,
        destinationIp: dad ? ALL_NODES : frame.sourceIp,
        target: address.bytes,
        linkAddress: session.ownMac,
        solicited: !dad,
        override: true,
      }),
    );
    if (!dad) this.remember(session, address, requesterMac, Buffer.from(frame.sourceIp));
    return 'answered';
  }

  /**
   * Traffic for a taken address reached us from `mac`/`ip`: its sender has our MAC cached for
   * the host, so it gets a direct reply at hand-back too.
   */
  noteTraffic(iface: string, key: string, mac: string, ip: number | Buffer): void {
    const entry = this.byAddress.get(`${iface}|${key}`);
    const macBytes = parseMac(mac);
    if (entry?.address.state !== 'taken' || !macBytes) return;
    this.remember(
      entry.session,
      entry.address,
      macBytes,
      typeof ip === 'number' ? ip : Buffer.from(ip),
    );
  }

  private mayAnswer(iface: string, requester: string, address: ProxyAddress, now: number): boolean {
    const key = `${iface}|${requester}|${address.key}`;
    const last = this.lastAnswer.get(key);
    if (last !== undefined && now - last < ANSWER_INTERVAL_MS) {
      this.answersLimited++;
      return false;
    }
    let bucket = this.answerBuckets.get(iface);
    if (!bucket) {
      bucket = new TokenBucket(ANSWERS_PER_SECOND, ANSWERS_PER_SECOND, now);
      this.answerBuckets.set(iface, bucket);
    }
    if (!bucket.take(now)) {
      this.answersLimited++;
      return false;
    }
    this.lastAnswer.set(key, now);
    this.answersSent++;
    return true;
  }

  private remember(
    session: Session,
    address: SessionAddress,
    mac: Buffer,
    ip: number | Buffer,
  ): void {
    const key = `${mac.toString('hex')}|${address.key}|${typeof ip === 'number' ? ip : ip.toString('hex')}`;
    session.requesters.delete(key);
    session.requesters.set(key, { mac, ip, address });
    if (session.requesters.size > MAX_REQUESTERS) {
      const oldest = session.requesters.keys().next().value;
      if (oldest !== undefined) session.requesters.delete(oldest);
    }
  }
}

/** `a` is at `mac`, told to the whole LAN: gratuitous ARP, or an unsolicited NA with Override. */
function announcement(ownMac: Buffer, mac: Buffer, a: ProxyAddress): Buffer {
  // The Ethernet source is always ours: a frame from the host's MAC would teach the switches
  // that the host sits behind our port.
  if (a.family === 4) {
    return arpFrame({
      op: 'request',
      sourceMac: ownMac,
      senderMac: mac,
      senderIp: a.value,
      targetIp: a.value,
    });
  }
  return ndpFrame({
    type: 'na',
    sourceMac: ownMac,
    destinationMac: multicastMac6(ALL_NODES),
    sourceIp: a.bytes,
    destinationIp: ALL_NODES,
    target: a.bytes,
    linkAddress: mac,
    override: true,
  });
}

/** One requester told where the host really is (ARP reply, or an unsolicited NA with Override). */
function directHandBack(session: Session, a: ProxyAddress, r: Requester): Buffer {
  if (typeof r.ip === 'number') {
    return arpFrame({
      op: 'reply',
      sourceMac: session.ownMac,
      senderMac: session.hostMac,
      senderIp: a.value,
      targetMac: r.mac,
      targetIp: r.ip,
      destinationMac: r.mac,
    });
  }
  return ndpFrame({
    type: 'na',
    sourceMac: session.ownMac,
    destinationMac: r.mac,
    sourceIp: a.bytes,
    destinationIp: r.ip,
    target: a.bytes,
    linkAddress: session.hostMac,
    override: true,
  });
}
