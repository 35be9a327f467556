import { messageOf } from '../../src/core/errors';
import { log, setLogLevel } from '../../src/core/log';
import { CAPABILITIES } from '../../src/daemon/capabilities';
import { Daemon } from '../../src/daemon/daemon';
import { parseDaemonOptions } from '../../src/daemon/options';

/** The daemon object, tasks and RandomData: no RandomX pool, no Wake-on-LAN watcher. */
const CORE = CAPABILITIES.filter((c) => ['daemon', 'tasks', 'randomdata'].includes(c.name));

/**
 * vigild with the core capabilities only: so bench/core can tell the core's own cost from
 * what RandomX and Wake-on-LAN add.
 */
async function main(): Promise<void> {
  const options = parseDaemonOptions(process.argv.slice(2));
  setLogLevel(options.logLevel);
  const daemon = new Daemon(options, CORE, (reason) => {
    log.crit(`lost the bus: ${reason}`);
    process.exit(3);
  });
  await daemon.start();
  const shutdown = (): void => {
    daemon.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error(messageOf(e));
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e: unknown) => {
  console.error(messageOf(e));
  process.exit(1);
});
