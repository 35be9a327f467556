// Minimal typings for the untyped native/JS packages the Wake-on-LAN watcher uses.

declare module 'cap' {
  import { EventEmitter } from 'node:events';

  export class Cap extends EventEmitter {
    /** Returns the link type, e.g. 'ETHERNET'. Throws when the device cannot be opened. */
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    close(): void;
    send(buffer: Buffer, nBytes?: number): void;
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
    static findDevice(ip?: string): string | undefined;
    static deviceList(): { name: string; addresses: { addr: string }[] }[];
  }
}

declare module 'raw-socket' {
  import { EventEmitter } from 'node:events';

  export interface RawSocket extends EventEmitter {
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      address: string,
      afterCallback: (error: Error | null, bytes: number) => void,
    ): RawSocket;
    close(): RawSocket;
    setOption(level: number, option: number, value: Buffer, length: number): void;
    setOption(level: number, option: number, value: number): void;
    pauseRecv(): RawSocket;
    resumeRecv(): RawSocket;
    on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'close', listener: () => void): this;
  }

  export function createSocket(options: {
    protocol?: number;
    addressFamily?: number;
    bufferSize?: number;
    generateChecksums?: boolean;
    checksumOffset?: number;
  }): RawSocket;
  export function createChecksum(...buffers: Buffer[]): number;
  export function writeChecksum(buffer: Buffer, offset: number, checksum: number): Buffer;
  export const Protocol: { ICMP: number; None: number };
  export const AddressFamily: { IPv4: number; IPv6: number };
}

declare module 'wol' {
  export function createMagicPacket(mac: string): Buffer;
  export function wake(
    mac: string,
    options?: { address?: string; port?: number },
  ): Promise<boolean>;
}
