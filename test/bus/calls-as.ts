import { BusConnection } from '../../src/bus/connection';
import { DBusError } from '../../src/bus/wire/connection';

/**
 * `node calls-as.js ADDRESS DEST PATH IFACE MEMBER COUNT`: COUNT calls at once, each on its own
 * connection, printing one JSON line per call as it settles ({ok} or {error}). Tests run it as
 * another user (spawn with uid) to see what the server allows that user.
 */
async function main(): Promise<void> {
  const [address, destination, path, iface, member, count] = process.argv.slice(2);
  const conns = await Promise.all(
    Array.from({ length: Number(count) }, () => BusConnection.open(address)),
  );
  console.log(JSON.stringify({ connected: conns.length }));
  await Promise.all(
    conns.map(async (c) => {
      try {
        await c.call({ destination, path, interface: iface, member });
        console.log(JSON.stringify({ ok: true }));
      } catch (e) {
        console.log(JSON.stringify({ error: e instanceof DBusError ? e.type : String(e) }));
      }
    }),
  );
  for (const c of conns) c.close();
}

void main();
