import { FIXED_HEADER_BYTES, frameLengths, parseHeader, type MessageHeader } from './message';

export interface FramerHandlers<T> {
  /**
   * A message's header has arrived: decide from it alone whether its body is worth reading.
   * Undefined skips the message unread; anything else is handed to `message` with it.
   */
  header(h: MessageHeader): T | undefined;
  /** A message read in full: `buf` holds the header and the body (at `h.headerLength`). */
  message(h: MessageHeader, buf: Buffer, token: T): void;
  /** A message whose header alone is over the limit, skipped whole without a look. */
  oversizedHeader?(bytes: number): void;
}

/**
 * Headers bigger than this are not read: the known fields of any real message fit in far less,
 * and a header is the one part that is buffered before anyone can decide about the message.
 */
export const MAX_HEADER_BYTES = 64 * 1024;

/**
 * Cuts the byte stream of a connection into messages. The header of each is parsed as soon as
 * it is in, before its body, and `header()` decides: a body that is read is copied once into
 * the message's own buffer as it streams in (or shared with the socket's chunk when it came in
 * one); a body that is skipped is discarded chunk by chunk, never held.
 *
 * A stream that is not D-Bus (bad byte order mark, version, lengths) throws DecodeError from
 * `push`: there is no way to find the next message, so the connection must close.
 */
export class MessageFramer<T> {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of the current message still to drop (skipped body or oversized message). */
  private skipping = 0;
  /** The message being filled, when its body did not come in one chunk. */
  private filling: { header: MessageHeader; buf: Buffer; at: number; token: T } | undefined;

  constructor(private readonly handlers: FramerHandlers<T>) {}

  /** Bytes held that belong to no message yet (a skipped body is never among them). */
  get bufferedBytes(): number {
    return this.buffered + (this.filling?.at ?? 0);
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.drain();
  }

  private drain(): void {
    for (;;) {
      if (this.skipping > 0) {
        this.skipping -= this.discard(this.skipping);
        if (this.skipping > 0) return;
        continue;
      }
      if (this.filling) {
        const f = this.filling;
        f.at += this.copyInto(f.buf, f.at);
        if (f.at < f.buf.length) return;
        this.filling = undefined;
        this.handlers.message(f.header, f.buf, f.token);
        continue;
      }
      if (this.buffered < FIXED_HEADER_BYTES) return;
      const { headerLength, bodyLength } = frameLengths(this.peek(FIXED_HEADER_BYTES));
      if (headerLength > MAX_HEADER_BYTES) {
        this.handlers.oversizedHeader?.(headerLength);
        this.skipping = headerLength + bodyLength;
        continue;
      }
      if (this.buffered < headerLength) return;
      const total = headerLength + bodyLength;
      const first = this.chunks[0];
      if (first.length >= total) {
        // The common case: the whole message is in one chunk; share it, copy nothing.
        const buf = first.subarray(0, total);
        const header = parseHeader(buf);
        this.discard(total);
        const token = this.handlers.header(header);
        if (token !== undefined) this.handlers.message(header, buf, token);
        continue;
      }
      const header = parseHeader(this.peek(headerLength));
      const token = this.handlers.header(header);
      if (token === undefined) {
        this.skipping = total;
        continue;
      }
      this.filling = { header, buf: Buffer.allocUnsafe(total), at: 0, token };
    }
  }

  /** The first `n` buffered bytes as one Buffer, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first.subarray(0, n);
    // Join just enough chunks, and keep the joined one in their place so nothing is joined twice.
    let count = 0;
    let bytes = 0;
    while (bytes < n) bytes += this.chunks[count++].length;
    const joined = Buffer.concat(this.chunks.slice(0, count), bytes);
    this.chunks.splice(0, count, joined);
    return joined.subarray(0, n);
  }

  /** Drop up to `n` buffered bytes; returns how many were dropped. */
  private discard(n: number): number {
    let dropped = 0;
    while (dropped < n && this.chunks.length > 0) {
      const first = this.chunks[0];
      const take = Math.min(first.length, n - dropped);
      if (take === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(take);
      dropped += take;
    }
    this.buffered -= dropped;
    return dropped;
  }

  /** Move buffered bytes into `target` from `at`; returns how many were moved. */
  private copyInto(target: Buffer, at: number): number {
    let moved = 0;
    while (at + moved < target.length && this.chunks.length > 0) {
      const first = this.chunks[0];
      const take = Math.min(first.length, target.length - at - moved);
      first.copy(target, at + moved, 0, take);
      if (take === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(take);
      moved += take;
    }
    this.buffered -= moved;
    return moved;
  }
}
