import { DAEMON_IFACE, ROOT_PATH } from './client';
import { EXIT, type CliCommand } from './command';

/** `vigilctl reload`: Daemon.Reload(), what `systemctl reload vigild` runs (ExecReload=). */
export const reloadCommand: CliCommand = {
  name: 'reload',
  usage: 'reload',
  summary: 're-read the daemon’s config file and apply it (root or the group vigil)',
  help:
    'Wake-on-LAN hosts, task limits, slow_pace_ms and the log level apply at once, without\n' +
    'dropping tasks or bus objects; the daemon logs what applied and what needs a restart.\n' +
    'A config that cannot be read or parsed, or has a bad value, is refused as a whole: the\n' +
    'running one stays and vigilctl exits 1 with the error.',
  async run(ctx, args) {
    ctx.parse(args, {}, 0, 0);
    const client = await ctx.connect();
    await client.call(ROOT_PATH, DAEMON_IFACE, 'Reload');
    if (ctx.json) ctx.printJson({ reloaded: true });
    else ctx.note('vigil reloaded its config (its log says what applied and what needs a restart)');
    return EXIT.OK;
  },
};
