import * as dbus from '@particle/dbus-next';
import { Message, type MessageBus, Variant } from '@particle/dbus-next';

export { Message, Variant };

/**
 * A client on @particle/dbus-next, a marshaller vigil does not use: the random calls of the
 * fuzz test are encoded by other code than the daemon's decoder.
 */
export class IndependentClient {
  private constructor(readonly bus: MessageBus) {}

  static async connect(address: string): Promise<IndependentClient> {
    const bus = dbus.sessionBus({ busAddress: address });
    await new Promise<void>((resolve, reject) => {
      bus.once('connect', () => resolve());
      bus.once('error', reject);
    });
    return new IndependentClient(bus);
  }

  get uniqueName(): string {
    return (this.bus as unknown as { name: string | null }).name ?? '';
  }

  async call(path: string, iface: string, member: string): Promise<unknown[]> {
    const reply = await this.bus.call(
      new Message({ destination: 'org.vigil.Vigil1', path, interface: iface, member }),
    );
    return (reply?.body ?? []) as unknown[];
  }

  close(): void {
    this.bus.disconnect();
  }
}
