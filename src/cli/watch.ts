import {
  OBJECT_MANAGER_IFACE,
  PROPERTIES_IFACE,
  ROOT_PATH,
  TASK_IFACE,
  type BusSignal,
} from './client';
import { EXIT, type CliCommand } from './command';
import {
  applyProgressSignal,
  applyProperties,
  emptyView,
  FINAL_STATES,
  type TaskView,
} from './progress';
import { formatValue, str, toJson, unwrap, unwrapDict, type BusValue } from './values';

type Interfaces = Record<string, Record<string, BusValue>>;

/** Short name of one of vigil's interfaces: `org.vigil.Vigil1.Host` → `Host`. */
function shortIface(iface: string): string {
  return iface.startsWith('org.vigil.Vigil1.') ? iface.slice('org.vigil.Vigil1.'.length) : iface;
}

function sameValue(a: BusValue | undefined, b: BusValue): boolean {
  return a !== undefined && formatValue(a) === formatValue(b);
}

function describeProps(props: Record<string, BusValue>): string {
  return Object.entries(props)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(' ');
}

/**
 * `vigilctl watch`: every task's live progress and every object coming and going, until
 * Ctrl-C. It subscribes to all of vigil's signals first, then reads GetManagedObjects, so
 * nothing that happens in between is lost; a task is then followed through its Progress,
 * Finished and PropertiesChanged signals. Other objects (Hosts, ...) and other signals
 * (WakeSent, slow_result, ...) are printed generically. With --json every event is one JSON
 * object per line.
 */
export const watchCommand: CliCommand = {
  name: 'watch',
  usage: 'watch',
  summary: 'live progress of every task, objects coming and going (Ctrl-C ends)',
  help:
    'Lines: "+" object added, "-" removed, "~" properties changed, "=" task finished,\n' +
    '"*" other signal; task progress as bars on a terminal, plain lines otherwise.\n' +
    'With --json: one event object per line: {"event": "added" | "removed" | "progress" |\n' +
    '"finished" | "changed" | "signal" | "owner", "path": ..., ...}.',
  async run(ctx, args) {
    ctx.parse(args, {}, 0, 0);
    const client = await ctx.connect();
    const sink = ctx.liveOutput();
    const tasks = new Map<string, TaskView>();
    // Last known properties of the other objects, so "~" lines show only real changes.
    const others = new Map<string, Interfaces>();
    const event = (e: Record<string, unknown>): void => {
      if (ctx.json) ctx.print(JSON.stringify(toJson(e)));
    };
    const say = (line: string): void => {
      if (!ctx.json) sink.log(line);
    };

    const added = (path: string, ifaces: Interfaces, initial: boolean): void => {
      event({ event: 'added', path, interfaces: ifaces, ...(initial ? { initial } : {}) });
      const props = ifaces[TASK_IFACE];
      if (!props) {
        others.set(path, ifaces);
        for (const [iface, p] of Object.entries(ifaces)) {
          say(`+ ${path} ${shortIface(iface)} ${describeProps(p)}`.trimEnd());
        }
        return;
      }
      const view = applyProperties(emptyView(path.slice(path.lastIndexOf('/') + 1)), props);
      tasks.set(path, view);
      say(`+ task ${view.id} ${view.kind} ${view.state} (owner ${String(props.OwnerUid ?? '?')})`);
      if (!FINAL_STATES.has(view.state)) sink.update(path, view);
    };

    const removed = (path: string, ifaces: string[]): void => {
      event({ event: 'removed', path, interfaces: ifaces });
      const view = tasks.get(path);
      if (view) {
        tasks.delete(path);
        sink.remove(path);
        say(`- task ${view.id} left the bus`);
      } else {
        others.delete(path);
        say(`- ${path}`);
      }
    };

    const onSignal = (s: BusSignal): void => {
      if (s.path === ROOT_PATH && s.iface === OBJECT_MANAGER_IFACE) {
        if (s.member === 'InterfacesAdded') {
          added(str(s.body[0]), unwrapDict(s.body[1]) as Interfaces, false);
        } else if (s.member === 'InterfacesRemoved') {
          removed(str(s.body[0]), (s.body[1] ?? []) as string[]);
        }
        return;
      }
      const view = tasks.get(s.path);
      if (view && s.iface === TASK_IFACE && s.member === 'Progress') {
        applyProgressSignal(view, s.body);
        event({
          event: 'progress',
          path: s.path,
          id: view.id,
          progress: view.progress,
          done: s.body[1],
          total: s.body[2],
          rate: view.rate,
        });
        if (!FINAL_STATES.has(view.state)) sink.update(s.path, view);
        return;
      }
      if (view && s.iface === TASK_IFACE && s.member === 'Finished') {
        view.state = str(s.body[0]);
        const result = unwrapDict(s.body[1]);
        event({ event: 'finished', path: s.path, id: view.id, state: view.state, result });
        sink.remove(s.path);
        const summary = describeProps(result);
        say(`= task ${view.id} ${view.kind} ${view.state}${summary ? '  ' + summary : ''}`);
        return;
      }
      if (s.iface === PROPERTIES_IFACE && s.member === 'PropertiesChanged') {
        const iface = str(s.body[0]);
        const changed = unwrapDict(s.body[1]);
        event({
          event: 'changed',
          path: s.path,
          interface: iface,
          changed,
          invalidated: s.body[2] ?? [],
        });
        if (view && iface === TASK_IFACE) {
          const before = view.state;
          applyProperties(view, changed);
          // Final states are reported once, by Finished; bars only for live tasks.
          if (!FINAL_STATES.has(view.state)) sink.update(s.path, view);
          else if (!FINAL_STATES.has(before)) sink.remove(s.path);
          return;
        }
        if (view) return;
        const known = others.get(s.path)?.[iface];
        const fresh = Object.fromEntries(
          Object.entries(changed).filter(([k, v]) => !known || !sameValue(known[k], v)),
        );
        const obj = others.get(s.path);
        if (obj) obj[iface] = { ...(known ?? {}), ...changed };
        if (Object.keys(fresh).length > 0) say(`~ ${s.path} ${describeProps(fresh)}`);
        return;
      }
      if (view) return; // other task-interface traffic is already shown by the bar
      event({
        event: 'signal',
        path: s.path,
        interface: s.iface,
        member: s.member,
        args: s.body.map(unwrap),
      });
      say(
        `* ${s.path} ${shortIface(s.iface)}.${s.member} ${s.body.map(formatValue).join(' ')}`.trimEnd(),
      );
    };

    const unsubscribe = await client.subscribe(onSignal);
    const snapshot = async (): Promise<number> => {
      const [objects] = await client.call(ROOT_PATH, OBJECT_MANAGER_IFACE, 'GetManagedObjects');
      const all = unwrapDict(objects) as Record<string, Interfaces>;
      for (const [path, ifaces] of Object.entries(all)) {
        if (!tasks.has(path)) added(path, ifaces, true);
      }
      return Object.keys(all).length;
    };
    // Follow the daemon across restarts: forget its objects when it goes, re-read them when it comes back.
    await client.watchOwner((owner) => {
      event({ event: 'owner', owner });
      if (owner === '') {
        say('vigil left the bus');
        for (const path of tasks.keys()) sink.remove(path);
        tasks.clear();
      } else {
        say('vigil is on the bus');
        snapshot().catch((e: unknown) => say(`cannot list objects: ${String(e)}`));
      }
    });
    const count = await snapshot();
    ctx.note(
      `watching org.vigil.Vigil1 on ${client.describe()} (${count} objects); Ctrl-C to stop`,
    );

    const code = await new Promise<number>((resolve) => {
      if (ctx.signal.aborted) resolve(EXIT.OK);
      ctx.signal.addEventListener('abort', () => resolve(EXIT.OK), { once: true });
      client.onLost((reason) => {
        sink.close();
        ctx.note(`vigilctl: ${reason}`);
        resolve(EXIT.UNREACHABLE);
      });
    });
    sink.close();
    await unsubscribe().catch(() => undefined);
    return code;
  },
};
