import winston from 'winston';

/**
 * One logger for the daemon. Lines go to stdout with a timestamp; under systemd
 * (JOURNAL_STREAM set) each line starts with its syslog priority `<N>` so journald keeps levels
 * (sd-daemon(3)), and the timestamp is left to the journal.
 */
const SYSLOG_PRIORITY: Record<string, number> = {
  emerg: 0,
  alert: 1,
  crit: 2,
  error: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

const underJournal = (): boolean => Boolean(process.env.JOURNAL_STREAM);

const lineFormat = winston.format.printf((info) => {
  const message = String(info.message);
  if (underJournal()) return `<${SYSLOG_PRIORITY[info.level] ?? 6}>${message}`;
  return `${String(info.timestamp)} ${info.level}: ${message}`;
});

export const log = winston.createLogger({
  levels: winston.config.syslog.levels,
  level: process.env.VIGIL_LOG_LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), lineFormat),
  transports: [new winston.transports.Console()],
});

export const LOG_LEVELS = Object.keys(SYSLOG_PRIORITY);

export function setLogLevel(level: string): void {
  log.level = level;
}
