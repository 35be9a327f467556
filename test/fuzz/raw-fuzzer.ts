import { BusConnection, callBusDaemon } from '../../src/bus/connection';
import { DBusError } from '../../src/bus/wire/connection';
import { marshalBody, WireWriter } from '../../src/bus/wire/marshal';
import {
  encodeRaw,
  FIELD,
  METHOD_CALL,
  NO_REPLY_EXPECTED,
  type RawField,
  RawValue,
} from '../../src/bus/wire/message';
import { Variant } from '../../src/bus/wire/variant';
import { ALLOWED_ERRORS } from './expected';
import {
  ALL_BASIC,
  parseSignature,
  randomIdentifier,
  randomInterfaceName,
  randomSignature,
  randomValue,
  Rng,
  type ValueOptions,
} from './generate';

/**
 * The raw wire fuzzer (issue 12, "the fuzz grows teeth"): messages built byte by byte with
 * vigil's own unchecked encoder, not through a binding that validates first, sent to every
 * member of every object of a running vigild:
 *   - typed bodies of random signatures over every type code, `h` and nested `v` included;
 *   - the members' own signatures with random values, fd indices in variants and dicts;
 *   - UNIX_FDS header counts that disagree with the body (0 or absent with indices, or fds
 *     promised and never sent), unknown header fields, NO_REPLY_EXPECTED;
 *   - the deepest nesting the specification allows, and one level deeper;
 *   - valid bodies with bytes flipped, bodies cut short, lengths that lie;
 *   - bodies of 1 byte to 1 MiB, and a few of 4 MiB to 64 MiB written in 1 MiB pieces.
 * The bus daemon drops a connection that sends what it cannot parse, so messages likely to be
 * invalid each go on a connection of their own. After every batch, quick(16) must answer.
 *
 *   node raw-fuzzer.js ADDRESS SEED COUNT BATCH
 * prints one JSON line per batch and a last one with the totals; exits 1 on a failure.
 */

const NAME = 'org.vigil.Vigil1';
const ROOT = '/org/vigil/Vigil1';
const REPLY_TIMEOUT_MS = 10000;

interface Target {
  path: string;
  iface: string;
  member: string;
  signature: string;
}

/** Every method of every object below `path`, from the daemon's own introspection. */
async function discover(conn: BusConnection, path: string, out: Target[]): Promise<void> {
  const reply = await conn.call({
    destination: NAME,
    path,
    interface: 'org.freedesktop.DBus.Introspectable',
    member: 'Introspect',
  });
  const xml = String(reply.body[0]);
  for (const iface of xml.matchAll(/<interface name="([^"]+)">([\s\S]*?)<\/interface>/g)) {
    for (const m of iface[2].matchAll(/<method name="([^"]+)"(\/>|>([\s\S]*?)<\/method>)/g)) {
      const args = [...(m[3] ?? '').matchAll(/type="([^"]+)" direction="in"/g)].map((a) => a[1]);
      out.push({ path, iface: iface[1], member: m[1], signature: args.join('') });
    }
  }
  for (const child of xml.matchAll(/<node name="([^"]+)"\/>/g)) {
    await discover(conn, path === '/' ? `/${child[1]}` : `${path}/${child[1]}`, out);
  }
}

/** Our Variant, every basic code including `h`. */
const OURS: ValueOptions = { variant: (s, v) => new Variant(s, v), codes: ALL_BASIC };

/** A message to send: its header fields, flags, body bytes, and whether the bus may drop it. */
interface Fuzzed {
  kind: string;
  fields: RawField[];
  flags: number;
  body: Buffer;
  bodyLength?: number;
  risky: boolean;
  /** For streamed big bodies: the length to write after the header. */
  streamed?: number;
}

function typedBody(signature: string, values: unknown[]): Buffer {
  const w = new WireWriter();
  marshalBody(w, signature, values);
  return Buffer.from(w.result());
}

function headerFields(rng: Rng, t: Target, signature: string): RawField[] {
  const fields: RawField[] = [
    [FIELD.PATH, 'o', t.path],
    [FIELD.MEMBER, 's', t.member],
    [FIELD.DESTINATION, 's', NAME],
  ];
  if (!rng.chance(0.1)) fields.push([FIELD.INTERFACE, 's', t.iface]);
  // Written unchecked: some of these signatures are past the limits on purpose.
  if (signature !== '') fields.push([FIELD.SIGNATURE, 'g', rawSignature(signature)]);
  return fields;
}

function rawSignature(sig: string): RawValue {
  return new RawValue(
    Buffer.concat([Buffer.from([sig.length]), Buffer.from(sig), Buffer.from([0])]),
  );
}

/** For a failure's line: the kind, member, signature and any UNIX_FDS count. */
function describe(m: Fuzzed): string {
  const field = (code: number): unknown => m.fields.find(([c]) => c === code)?.[2];
  const fds = field(FIELD.UNIX_FDS);
  return `${m.kind}: ${String(field(FIELD.MEMBER))}(${signatureOf(m).slice(0, 60)})${
    fds === undefined ? '' : ` unix_fds=${String(fds)}`
  }`;
}

function signatureOf(m: Fuzzed): string {
  const f = m.fields.find(([code]) => code === FIELD.SIGNATURE);
  return f ? (f[2] as RawValue).bytes.subarray(1, -1).toString() : '';
}

/** Nesting at the specification's limits, or one past them (which the bus refuses). */
function deepBody(rng: Rng): { signature: string; body: Buffer; over: boolean } {
  const over = rng.chance(0.2);
  const roll = rng.int(0, 2);
  if (roll === 0) {
    const depth = over ? 33 : 32;
    const sig = 'a'.repeat(depth) + 'i';
    const w = new WireWriter();
    // Nested arrays of one element each down to one int32, lengths patched on the way out.
    const lengths: number[] = [];
    for (let i = 0; i < depth; i++) {
      w.u32(0);
      lengths.push(w.pos - 4);
    }
    w.i32(rng.int(-5, 5));
    for (let i = depth - 1; i >= 0; i--) w.patchU32(lengths[i], w.pos - lengths[i] - 4);
    return { signature: sig, body: Buffer.from(w.result()), over };
  }
  if (roll === 1) {
    const depth = over ? 33 : 32;
    let value: unknown = 1;
    for (let i = 0; i < depth; i++) value = [value];
    const sig = '('.repeat(depth) + 'i' + ')'.repeat(depth);
    if (over) {
      // The encoder refuses this signature; write the bytes ourselves (alignment only).
      const w = new WireWriter();
      w.i32(1);
      return { signature: sig, body: Buffer.from(w.result()), over };
    }
    return { signature: sig, body: typedBody(sig, [value]), over };
  }
  const depth = over ? 65 : 64;
  const w = new WireWriter();
  for (let i = 0; i < depth - 1; i++) marshalBody(w, 'g', ['v']);
  marshalBody(w, 'g', ['s']);
  w.u32(6);
  w.utf8('bottom');
  w.u8(0);
  return { signature: 'v', body: Buffer.from(w.result()), over };
}

function fuzzed(rng: Rng, t: Target, index: number): Fuzzed {
  const roll = rng.next();
  if (roll < 0.25) {
    // The member's own signature with random values: reaches the handlers.
    const body = typedBody(
      t.signature,
      parseSignature(t.signature).map((d) => randomValue(rng, d, [ROOT], 0, OURS)),
    );
    const flags = rng.chance(0.05) ? NO_REPLY_EXPECTED : 0;
    return {
      kind: 'own signature',
      fields: headerFields(rng, t, t.signature),
      flags,
      body,
      risky: false,
    };
  }
  if (roll < 0.45) {
    const sig = randomSignature(rng, ALL_BASIC);
    const body = typedBody(
      sig,
      parseSignature(sig).map((d) => randomValue(rng, d, [ROOT], 0, OURS)),
    );
    return {
      kind: 'random signature',
      fields: headerFields(rng, t, sig),
      flags: 0,
      body,
      risky: false,
    };
  }
  if (roll < 0.55) {
    // fd indices with a UNIX_FDS count that disagrees: absent, 0, or fewer than the index.
    const sig = rng.pick(['h', 'ssv', 'a{sv}', 'ah', '(sh)', t.signature || 'h']);
    const values = parseSignature(sig).map((d) => randomValue(rng, d, [ROOT], 0, OURS));
    const body = typedBody(sig, values);
    const fields = headerFields(rng, t, sig);
    const lie = rng.next();
    // Promising fds that never come makes the bus drop the sender; rarely, on its own connection.
    if (lie < 0.05) fields.push([FIELD.UNIX_FDS, 'u', rng.int(1, 4)]);
    else if (lie < 0.5) fields.push([FIELD.UNIX_FDS, 'u', 0]);
    return { kind: 'fd count disagrees', fields, flags: 0, body, risky: lie < 0.05 };
  }
  if (roll < 0.6) {
    // Where exactly libdbus counts the limit may differ by one from ours: its own connection.
    const deep = deepBody(rng);
    return {
      kind: deep.over ? 'nesting past the limit' : 'nesting at the limit',
      fields: headerFields(rng, t, deep.signature),
      flags: 0,
      body: deep.body,
      risky: true,
    };
  }
  if (roll < 0.68) {
    // A valid body with bytes flipped: the bus lets some through.
    const sig = t.signature || randomSignature(rng, ALL_BASIC);
    const body = typedBody(
      sig,
      parseSignature(sig).map((d) => randomValue(rng, d, [ROOT], 0, OURS)),
    );
    for (let f = rng.int(1, 3); f > 0 && body.length > 0; f--) {
      body[rng.int(0, body.length - 1)] = rng.int(0, 255);
    }
    return {
      kind: 'flipped bytes',
      fields: headerFields(rng, t, sig),
      flags: 0,
      body,
      risky: true,
    };
  }
  if (roll < 0.7) {
    const sig = t.signature || 's';
    const full = typedBody(
      sig,
      parseSignature(sig).map((d) => randomValue(rng, d, [ROOT], 0, OURS)),
    );
    const cut = full.subarray(0, rng.int(0, Math.max(0, full.length - 1)));
    if (rng.chance(0.5))
      return {
        kind: 'cut short',
        fields: headerFields(rng, t, sig),
        flags: 0,
        body: cut,
        risky: true,
      };
    // Lengths inside the body that lie: the cut body padded with junk to more than it was.
    const junk = Buffer.alloc(rng.int(1, 64), rng.int(1, 255));
    return {
      kind: 'inconsistent body',
      fields: headerFields(rng, t, sig),
      flags: 0,
      body: Buffer.concat([cut, junk]),
      risky: true,
    };
  }
  if (roll < 0.75) {
    const fields = headerFields(rng, t, t.signature);
    // libdbus knows field 10 (a container instance, typed `o`) and drops a sender that gives
    // it a string: that one goes on its own connection.
    const code = rng.int(10, 255);
    fields.push([code, 'v', new Variant('s', randomIdentifier(rng, 20))]);
    const body = typedBody(
      t.signature,
      parseSignature(t.signature).map((d) => randomValue(rng, d, [ROOT], 0, OURS)),
    );
    return { kind: 'unknown header field', fields, flags: 0, body, risky: code === 10 };
  }
  if (roll < 0.8) {
    // Wrong interface or member names for the object (made up, or another object's).
    const fields: RawField[] = [
      [FIELD.PATH, 'o', t.path],
      [FIELD.MEMBER, 's', randomIdentifier(rng, 30)],
      [FIELD.INTERFACE, 's', randomInterfaceName(rng)],
      [FIELD.DESTINATION, 's', NAME],
    ];
    return { kind: 'made-up member', fields, flags: 0, body: Buffer.alloc(0), risky: false };
  }
  // Sizes from 1 byte to 1 MiB, as 'y' or 'ay', to any member.
  const size = index % 7 === 0 ? 1 : Math.floor(2 ** (rng.next() * 20));
  if (size === 1) {
    return {
      kind: 'size sweep',
      fields: headerFields(rng, t, 'y'),
      flags: 0,
      body: Buffer.from([7]),
      risky: false,
    };
  }
  const data = Buffer.alloc(size, rng.int(0, 255));
  return {
    kind: 'size sweep',
    fields: headerFields(rng, t, 'ay'),
    flags: 0,
    body: typedBody('ay', [data]),
    risky: false,
  };
}

type Outcome = string;
const NO_REPLY_ASKED = 'no reply asked';

function outcomeOf(e: unknown): Outcome {
  if (e instanceof DBusError) return e.type;
  return `exception: ${String(e)}`;
}

class Fuzzer {
  private main!: BusConnection;

  get connection(): BusConnection {
    return this.main;
  }

  readonly totals = new Map<string, number>();
  readonly kinds = new Map<string, number>();
  readonly failures: string[] = [];
  sent = 0;
  private closing = false;

  constructor(private readonly address: string) {}

  async open(): Promise<void> {
    const main = await BusConnection.open(this.address);
    main.onClose((reason) => {
      if (!this.closing) this.failures.push(`the main connection closed: ${reason}`);
    });
    this.main = main;
  }

  count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  private judge(kind: string, outcome: Outcome, risky: boolean): void {
    this.count(this.totals, outcome);
    if (outcome === 'return' || outcome === NO_REPLY_ASKED) return;
    if (outcome === 'org.freedesktop.DBus.Error.Disconnected') {
      if (!risky)
        this.failures.push(`${kind}: the bus dropped a connection sending a valid message`);
      return;
    }
    if (!ALLOWED_ERRORS.has(outcome)) this.failures.push(`${kind}: ${outcome}`);
  }

  private async sendOn(conn: BusConnection, m: Fuzzed): Promise<Outcome> {
    const serial = conn.nextSerial();
    const bytes = encodeRaw({
      type: METHOD_CALL,
      serial,
      flags: m.flags,
      fields: m.fields,
      body: m.body,
      bodyLength: m.bodyLength ?? (m.streamed !== undefined ? m.streamed : undefined),
    });
    if (m.flags & NO_REPLY_EXPECTED) {
      conn.sendRaw(bytes);
      return NO_REPLY_ASKED;
    }
    const reply = conn.callRaw(bytes, serial, { timeoutMs: REPLY_TIMEOUT_MS });
    if (m.streamed !== undefined) this.stream(conn, m.streamed);
    try {
      await reply;
      return 'return';
    } catch (e) {
      return outcomeOf(e);
    }
  }

  /** A big `ay` body after its header, in 1 MiB pieces from one buffer. */
  private stream(conn: BusConnection, bodyLength: number): void {
    const piece = Buffer.alloc(1024 * 1024, 0x42);
    const first = Buffer.alloc(4);
    first.writeUInt32LE(bodyLength - 4);
    conn.sendRaw(first);
    for (let left = bodyLength - 4; left > 0; left -= piece.length) {
      conn.sendRaw(left >= piece.length ? piece : piece.subarray(0, left));
    }
  }

  async one(m: Fuzzed): Promise<void> {
    this.sent++;
    this.count(this.kinds, m.kind);
    if (!m.risky) {
      if (this.main.closed) await this.open();
      this.judge(describe(m), await this.sendOn(this.main, m), false);
      return;
    }
    // Likely invalid: a connection of its own, which the bus may drop.
    const conn = await BusConnection.open(this.address);
    try {
      this.judge(describe(m), await this.sendOn(conn, m), true);
    } finally {
      conn.close();
    }
  }

  async quick(): Promise<void> {
    if (this.main.closed) await this.open();
    const reply = await this.main.call(
      {
        destination: NAME,
        path: `${ROOT}/RandomData`,
        interface: `${NAME}.RandomData`,
        member: 'quick',
        signature: 'i',
        body: [16],
      },
      { timeoutMs: REPLY_TIMEOUT_MS },
    );
    if (Number(reply.body[0]) >= 65536)
      throw new Error(`quick(16) answered ${String(reply.body[0])}`);
  }

  close(): void {
    this.closing = true;
    this.main.close();
  }
}

async function main(): Promise<void> {
  const [address, seedText, countText, batchText] = process.argv.slice(2);
  const seed = Number(seedText);
  const count = Number(countText);
  const batch = Number(batchText);
  const fuzzer = new Fuzzer(address);
  await fuzzer.open();
  // A task of the fuzzer's own, so that the Task object and its owner-only members are targets.
  await fuzzer.connection.call({
    destination: NAME,
    path: `${ROOT}/RandomData`,
    interface: `${NAME}.RandomData`,
    member: 'slow',
    signature: 'i',
    body: [4096],
  });
  const targets: Target[] = [];
  await discover(fuzzer.connection, '/', targets);
  const rng = new Rng(seed);
  const bigSizes = [4 * 2 ** 20, 16 * 2 ** 20, 33 * 1000 * 1000, 2 ** 26 + 4];
  let index = 0;
  for (let b = 0; index < count; b++) {
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < batch && index < count; i++, index++) {
      const t = targets[index % targets.length];
      let m = fuzzed(rng, t, index);
      // A well-formed Task.Wait waits for its task to end: it gets a wrong body instead.
      if (t.member === 'Wait' && signatureOf(m) === '') {
        m = { ...m, body: Buffer.from([1]), fields: headerFields(rng, t, 'y') };
      }
      if (i === 0 && b % 5 === 4 && bigSizes.length > 0) {
        const size = bigSizes.shift() as number;
        m = {
          kind: `streamed ${(size / 2 ** 20).toFixed(0)} MiB`,
          fields: headerFields(rng, t, 'ay'),
          flags: 0,
          body: Buffer.alloc(0),
          streamed: size,
          risky: false,
        };
      }
      jobs.push(fuzzer.one(m));
    }
    await Promise.all(jobs);
    await fuzzer.quick();
    console.log(JSON.stringify({ batch: b, sent: fuzzer.sent, failures: fuzzer.failures.length }));
  }
  // One last round trip through the bus for every connection's sake, then the totals.
  await callBusDaemon(fuzzer.connection, 'GetId');
  console.log(
    JSON.stringify({
      done: true,
      sent: fuzzer.sent,
      targets: targets.length,
      outcomes: Object.fromEntries(fuzzer.totals),
      kinds: Object.fromEntries(fuzzer.kinds),
      failures: fuzzer.failures.slice(0, 50),
    }),
  );
  fuzzer.close();
  process.exitCode = fuzzer.failures.length > 0 ? 1 : 0;
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.log(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
    process.exit(1);
  });
}
