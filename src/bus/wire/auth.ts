import type { Duplex } from 'node:stream';

/** The bus refused us, or said something that is not the SASL protocol. */
export class AuthError extends Error {}

/** Longest line the server may send during authentication (libdbus allows far less). */
const MAX_LINE = 16 * 1024;

/**
 * The client side of D-Bus authentication, SASL EXTERNAL only: the server already knows who we
 * are from the socket's credentials, we name the same UID. Unix fd passing is never negotiated
 * (vigil has no use for descriptors, and a peer cannot then send any). Resolves with the
 * server's GUID and any bytes that came after its OK (there should be none before BEGIN).
 */
export function authenticate(
  socket: Duplex,
  uid: number = process.getuid?.() ?? 0,
): Promise<{ guid: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let text = Buffer.alloc(0);
    const done = (e: Error | undefined, value?: { guid: string; rest: Buffer }): void => {
      // Paused until the connection reads messages, so no byte after OK is lost in between.
      socket.pause();
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (e) reject(e);
      else resolve(value as { guid: string; rest: Buffer });
    };
    const onClose = (): void =>
      done(new AuthError('the bus closed the connection during authentication'));
    const onError = (e: Error): void => done(new AuthError(`authentication failed: ${e.message}`));
    const onData = (chunk: Buffer): void => {
      text = Buffer.concat([text, chunk]);
      const end = text.indexOf('\r\n');
      if (end === -1) {
        if (text.length > MAX_LINE) done(new AuthError('the bus sent an overlong line'));
        return;
      }
      const line = text.subarray(0, end).toString('latin1');
      const rest = text.subarray(end + 2);
      if (line.startsWith('OK ')) {
        const guid = line.slice(3).trim();
        socket.write('BEGIN\r\n');
        done(undefined, { guid, rest });
      } else if (line.startsWith('REJECTED')) {
        done(new AuthError(`the bus refused EXTERNAL authentication as uid ${uid}`));
      } else {
        done(new AuthError(`unexpected answer during authentication: ${line.slice(0, 80)}`));
      }
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    const hexUid = Buffer.from(String(uid), 'ascii').toString('hex');
    socket.write(Buffer.concat([Buffer.from([0]), Buffer.from(`AUTH EXTERNAL ${hexUid}\r\n`)]));
  });
}
