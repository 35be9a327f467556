import net from 'node:net';
import os from 'node:os';

/**
 * Connect to a Linux abstract unix socket (`unix:abstract=NAME`). Node 20 pads the address of a
 * `\0`-prefixed path to the full sockaddr_un, which names another socket, so the connect is
 * made here through libc (koffi, loaded only when such an address is used) with the exact
 * length, and the connected descriptor handed to a net.Socket.
 */
export function connectAbstract(name: string): net.Socket {
  // Loaded lazily: nothing else in the bus layer needs a native module.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi = require('koffi') as typeof import('koffi');
  const libc = koffi.load('libc.so.6');
  const socket = libc.func('int socket(int domain, int type, int protocol)');
  const connect = libc.func('int connect(int fd, const uint8_t *addr, uint32_t len)');
  const close = libc.func('int close(int fd)');
  const AF_UNIX = 1;
  const SOCK_STREAM = 1;
  const SOCK_CLOEXEC = 0o2000000;
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length > 107) throw new Error(`@${name}: abstract socket name too long`);
  const addr = Buffer.alloc(3 + bytes.length);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 3); // addr[2] stays 0: the abstract namespace
  const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new Error(`@${name}: socket: ${errnoName(koffi.errno())}`);
  if ((connect(fd, addr, addr.length) as number) !== 0) {
    const errno = koffi.errno();
    close(fd);
    throw new Error(`@${name}: ${errnoName(errno)}`);
  }
  return new net.Socket({ fd, readable: true, writable: true });
}

function errnoName(errno: number): string {
  const entry = Object.entries(os.constants.errno).find(([, n]) => n === errno);
  return entry ? entry[0] : `errno ${errno}`;
}
