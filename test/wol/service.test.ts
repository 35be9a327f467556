/**
 * The Wake-on-LAN service with stub I/O: no capture, no socket, nothing leaves the process.
 */
import { parseIpv4, parseMac } from '../../src/wol/addresses';
import { arpFrame } from '../../src/wol/packets';
import { WolService } from '../../src/wol/service';
import { quietLog as quiet, stubIo } from '../helpers/wol';

/** Failures of wakes kept for a caller to be told (the wake sender's private map). */
const unreported = (service: WolService): number =>
  (service as unknown as { wakes: { failed: Map<unknown, string> } }).wakes.failed.size;

describe('WolService', () => {
  it('keeps nothing for ARP-caused wakes whose magic packet could not be sent', async () => {
    let clock = 1_000_000;
    const io = stubIo(async () => {
      throw new Error('lo has no IPv4 address to broadcast the magic packet from');
    });
    const service = new WolService({
      log: quiet,
      io,
      now: () => clock,
      configHosts: [
        {
          name: 'sleeper',
          mac: '02:00:00:00:00:0a',
          ip: '10.9.0.10',
          interface: 'lo',
          ip6: [],
          onlyFrom: [],
          ignoreFrom: [],
          timeout: 1,
          cooldown: 0,
          proxy: false,
          wakePorts: [],
          source: 'config',
        },
      ],
    });
    await service.start();
    clock += 2000;
    service.watcher.tick(); // not seen within its timeout: offline
    const request = arpFrame({
      op: 'request',
      sourceMac: parseMac('02:00:00:00:00:0b')!,
      senderIp: parseIpv4('10.9.0.11')!,
      targetIp: parseIpv4('10.9.0.10')!,
    });
    for (let i = 0; i < 50; i++) {
      clock += 10;
      expect(service.watcher.handleFrame('lo', request).kind).toBe('wake');
    }
    await new Promise((r) => setImmediate(r));
    expect(unreported(service)).toBe(0);

    // A manual wake still reports its failure to the caller.
    await expect(service.wake('sleeper')).rejects.toThrow(/cannot send the magic packet/);
    expect(unreported(service)).toBe(0);
    service.stop();
  });

  it('without CAP_NET_RAW, says the sleep proxy is unavailable only for hosts that want it', async () => {
    const warnings: string[] = [];
    const log = { ...quiet, warning: (m: string) => warnings.push(m) };
    const service = new WolService({ log, io: stubIo() });
    await service.start();
    const unavailable = () => warnings.filter((w) => /sleep proxy unavailable/.test(w));
    service.addHost('plain', '02:00:00:00:00:0a', '10.9.0.10', { interface: 'lo' });
    expect(unavailable()).toEqual([]);
    service.addHost('proxied', '02:00:00:00:00:0b', '10.9.0.11', { interface: 'lo', proxy: true });
    expect(unavailable()).toEqual([
      expect.stringMatching(/answering for proxied needs CAP_NET_RAW/),
    ]);
    await service.stop();
  });
});
