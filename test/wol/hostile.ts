/**
 * Hostile frames for the flood tests, generated from a seed (a failing flood can be replayed).
 * Each says whether it is malformed by construction, so the expected count does not depend
 * on the parser under test.
 */
import { ndpFrame } from '../../src/wol/packets';
import { fixIcmp6Checksum, ip6, ipFrame, solicitation } from './craft';

/** Deterministic random numbers, so a failing flood can be replayed. */
export function generator(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/**
 * Hostile ARP-typed frames. Malformed by construction (so the expected count does not depend
 * on the parser under test): truncated bodies, wrong hardware/protocol types or lengths,
 * unknown operations, multicast sender MACs. The rest are well-formed requests for random
 * unwatched addresses with random senders, which must be seen but wake nothing.
 */
export function hostileFrame(rand: () => number): { frame: Buffer; malformed: boolean } {
  const kind = rand() % 7;
  const source = Buffer.from([
    0x02,
    rand() & 0xff,
    rand() & 0xff,
    rand() & 0xff,
    rand() & 0xff,
    rand() & 0xff,
  ]);
  const body = Buffer.alloc(28);
  for (let i = 0; i < 28; i++) body[i] = rand() & 0xff;
  body.writeUInt16BE(1, 0);
  body.writeUInt16BE(0x0800, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(1 + (rand() & 1), 6);
  body[8] = 0x02; // unicast sender MAC
  let malformed = true;
  let length = 28;
  switch (kind) {
    case 0:
      // Truncated body; ARP frames shorter than its 8-byte fixed header do not cross a Linux bridge.
      length = 8 + (rand() % 20);
      break;
    case 1:
      body.writeUInt16BE(2 + (rand() % 0xfffe), 0); // hardware type other than Ethernet
      break;
    case 2:
      body.writeUInt16BE(0x86dd, 2); // protocol other than IPv4
      break;
    case 3:
      body[4] = 7 + (rand() % 200); // hardware length
      break;
    case 4:
      body.writeUInt16BE(3 + (rand() % 0xfffc), 6); // operation
      break;
    case 5:
      body[8] |= 0x01; // multicast sender MAC
      break;
    default:
      malformed = false;
      // Target in 198.18.0.0/15 (benchmarking range): never a watched host in the tests.
      body.writeUInt32BE((0xc6120000 | (rand() & 0x1ffff)) >>> 0, 24);
      body.writeUInt32BE((0xc6120000 | (rand() & 0x1ffff)) >>> 0, 14);
  }
  const frame = Buffer.alloc(14 + length);
  frame.fill(0xff, 0, 6);
  source.copy(frame, 6);
  frame.writeUInt16BE(0x0806, 12);
  body.copy(frame, 14, 0, length);
  return { frame, malformed };
}

const randomMac = (rand: () => number): Buffer =>
  Buffer.from([0x02, rand() & 0xff, rand() & 0xff, rand() & 0xff, rand() & 0xff, rand() & 0xff]);

/** fd99::/16 with random bits: never a watched host's address in the tests. */
function randomIp6(rand: () => number): string {
  const groups = ['fd99', ...Array.from({ length: 7 }, () => (rand() & 0xffff).toString(16))];
  return groups.join(':');
}

/**
 * Hostile frames for a proxying daemon, each of a kind its capture filter passes (ARP,
 * NS/NA, or IP to its MAC for a proxied address), malformed by construction or well-formed
 * and harmless: NS/NA about unwatched addresses, TCP ACKs and SYNs/UDP to ports that wake
 * nothing (the proxied host's wake_ports are tcp/22).
 */
export function hostileFrame6(
  rand: () => number,
  vigilMac: Buffer,
  proxied4: string,
  proxied6: string,
): { frame: Buffer; malformed: boolean } {
  const kind = rand() % 14;
  const source = randomMac(rand);
  const ns = (): Buffer =>
    solicitation({ sourceMac: source, source: randomIp6(rand), target: randomIp6(rand) });
  const toProxied = (protocol: 'tcp' | 'udp', flags: number, port: number, v6: boolean): Buffer =>
    ipFrame({
      sourceMac: source,
      destinationMac: vigilMac,
      source: v6 ? randomIp6(rand) : `10.9.${rand() & 0xff}.${1 + (rand() % 250)}`,
      destination: v6 ? proxied6 : proxied4,
      protocol,
      destinationPort: port,
      flags,
    });
  const port = 23 + (rand() % 60000); // never 22
  switch (kind) {
    case 0:
    case 1:
    case 2:
      return hostileFrame(rand);
    case 3: {
      const f = ns();
      f[21] = 254; // hop limit below 255: routed, so not Neighbor Discovery
      return { frame: f, malformed: true };
    }
    case 4: {
      const f = ns();
      f[57] ^= 0x5a; // checksum
      return { frame: f, malformed: true };
    }
    case 5: {
      const f = ns();
      const short = 8 + (rand() % 16); // ICMPv6 body shorter than an NS
      f.writeUInt16BE(short, 18);
      return { frame: f.subarray(0, 54 + short), malformed: true };
    }
    case 6: {
      const f = ns();
      f[79] = 0; // the source link-layer option claims length 0
      return { frame: fixIcmp6Checksum(f), malformed: true };
    }
    case 7:
      return {
        frame: solicitation({ sourceMac: source, source: randomIp6(rand), target: 'ff02::1' }),
        malformed: true,
      };
    case 8: {
      const f = ns();
      f[14] = 0x45; // not version 6
      return { frame: f, malformed: true };
    }
    case 9: {
      const f = ns();
      f.writeUInt16BE(600 + (rand() % 1000), 18); // payload longer than the frame
      return { frame: f, malformed: true };
    }
    case 10:
      return {
        frame: ndpFrame({
          type: 'na',
          sourceMac: source,
          destinationMac: Buffer.from('333300000001', 'hex'),
          sourceIp: ip6(randomIp6(rand)),
          destinationIp: ip6('ff02::1'),
          target: ip6(randomIp6(rand)),
          linkAddress: source,
          override: (rand() & 1) === 1,
        }),
        malformed: false,
      };
    case 11:
      return { frame: ns(), malformed: false };
    case 12: {
      const v6 = (rand() & 1) === 1;
      const f = toProxied('tcp', 0x02, port, v6);
      const cut = v6 ? 54 + 20 : 34 + 20;
      // Truncated TCP header (the IP length says so too): malformed.
      if (v6) f.writeUInt16BE(8, 18);
      else f.writeUInt16BE(28, 16);
      return { frame: f.subarray(0, cut - 12), malformed: true };
    }
    default: {
      const v6 = (rand() & 1) === 1;
      const pick = rand() % 3;
      const f =
        pick === 0
          ? toProxied('tcp', 0x10, 22, v6) // an ACK: not opening anything
          : pick === 1
            ? toProxied('tcp', 0x02, port, v6) // a SYN to a port that is not listed
            : toProxied('udp', 0, port, v6);
      return { frame: f, malformed: false };
    }
  }
}
