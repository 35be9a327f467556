#!/usr/bin/env node
import { BusAddressError, BusUnavailableError, NameTakenError } from '../bus/connection';
import { StateDatabaseError } from '../core/database';
import { messageOf } from '../core/errors';
import { log, setLogLevel } from '../core/log';
import { CAPABILITIES } from './capabilities';
import { Daemon } from './daemon';
import { parseDaemonOptions, UsageError } from './options';

/** Exit codes: 0 clean stop, 1 already running, 2 usage, 3 no bus / bus lost, 4 state error. */
async function main(): Promise<void> {
  let options;
  try {
    options = parseDaemonOptions(process.argv.slice(2));
  } catch (e) {
    const help = e instanceof UsageError && messageOf(e).startsWith('Usage:');
    (help ? process.stdout : process.stderr).write(`${messageOf(e)}\n`);
    process.exit(help ? 0 : 2);
  }
  setLogLevel(options.logLevel);

  let stopping = false;
  const daemon = new Daemon(options, CAPABILITIES, (reason) => {
    if (stopping) return;
    // systemd restarts us (Restart=on-failure); a daemon without its bus is useless.
    log.crit(`lost the bus: ${reason}; exiting`);
    process.exit(3);
  });

  // Signal handlers go in before the start: node's default for SIGTERM, SIGINT and SIGHUP is to
  // die on the spot, and systemd or a client that saw the name may signal during the start.
  let started = false;
  let stopAfterStart: string | undefined;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    if (!started) {
      // Stopping half-started capabilities could race their set-up: finish it, then stop.
      stopAfterStart ??= signal;
      return;
    }
    stopping = true;
    log.notice(`${signal}: stopping`);
    const force = setTimeout(() => process.exit(0), 4800);
    force.unref();
    daemon.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error(`error while stopping: ${messageOf(e)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // SIGHUP reloads the config, like Daemon.Reload(); ignored until every capability is up.
  process.on('SIGHUP', () => {
    if (!started || stopping) {
      log.notice('SIGHUP while starting or stopping: ignored');
      return;
    }
    try {
      daemon.reload('SIGHUP');
    } catch {
      // Logged by reload; the running config stays.
    }
  });

  try {
    await daemon.start();
  } catch (e) {
    if (e instanceof NameTakenError) {
      log.error(`vigil is already running: ${messageOf(e)}`);
      process.exit(1);
    }
    if (e instanceof BusAddressError) {
      log.error(messageOf(e));
      process.exit(2);
    }
    if (e instanceof BusUnavailableError) {
      log.error(`${messageOf(e)}. Start a bus (or use --bus ADDRESS) and try again.`);
      process.exit(3);
    }
    if (e instanceof StateDatabaseError) {
      log.error(messageOf(e));
      process.exit(4);
    }
    log.error(`cannot start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  }
  started = true;
  if (stopAfterStart) shutdown(stopAfterStart);
}

process.on('unhandledRejection', (reason) => {
  log.error(
    `unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
  );
});

void main();
