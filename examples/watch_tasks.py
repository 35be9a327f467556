#!/usr/bin/python3
"""Print vigil's task signals, believing only vigil (dbus-python).

    watch_tasks.py [--system | --session | --address ADDRESS]

One line per event, until interrupted:
  owner NAME                    the unique name that owns org.vigil.Vigil1 now, '-' when none
  progress ID FRACTION DONE TOTAL
  finished ID STATE RESULT      RESULT is the task's result as JSON
  slow_result ID VALUE

Any local user can send a signal straight to this program's connection (a one-to-one signal
is delivered whatever the match rules say), with vigil's path, interface and member. Only the
sender field, which the bus daemon writes, tells vigil's signals from such forgeries.
"""
import argparse
import json
import signal

import dbus
import dbus.bus
import dbus.mainloop.glib
from gi.repository import GLib

NAME = "org.vigil.Vigil1"
TASK = NAME + ".Task"
RANDOM_DATA = NAME + ".RandomData"


def say(*words):
    print(*words, flush=True)


def task_id(path):
    return path.rsplit("/", 1)[-1]


def on_progress(fraction, done, total, _rate, path):
    say("progress", task_id(path), "%.3f" % fraction, int(done), int(total))


def on_finished(state, result, path):
    say("finished", task_id(path), state, json.dumps(result, sort_keys=True, default=str))


def on_slow_result(task, value, path):
    say("slow_result", task, value)


def connect(args):
    if args.address:
        return dbus.bus.BusConnection(args.address)
    return dbus.SessionBus() if args.session else dbus.SystemBus()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--system", action="store_true", help="the system bus (the default)")
    where.add_argument("--session", action="store_true")
    where.add_argument("--address")
    args = parser.parse_args()

    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = connect(args)
    for interface, member, handler in (
        (TASK, "Progress", on_progress),
        (TASK, "Finished", on_finished),
        (RANDOM_DATA, "slow_result", on_slow_result),
    ):
        # bus_name is the sender check. Given the well-known name, dbus-python puts
        # sender='org.vigil.Vigil1' in the match rule (the bus then routes only vigil's
        # broadcasts here), follows the name's unique owner through NameOwnerChanged (a
        # restarted vigil is followed), and drops every signal whose sender is not that
        # owner: one-to-one forgeries, and everything while vigil is not running.
        bus.add_signal_receiver(handler, member, interface, bus_name=NAME, path_keyword="path")
    # Only to show which vigil is believed; the receivers above follow the owner themselves.
    bus.watch_name_owner(NAME, lambda owner: say("owner", owner or "-"))

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
