#!/usr/bin/python3
"""Print vigil's task signals, believing only vigil (GLib's GDBus, through Python's gi).

    watch_tasks_gio.py [--system | --session | --address ADDRESS]

Prints the same lines as watch_tasks.py (owner, progress, finished, slow_result).

The subscriptions name the unique owner of org.vigil.Vigil1 as sender, never the well-known
name: GDBus then drops every signal from another connection, one-to-one forgeries included,
on every GLib version. (A well-known name as sender is only checked from GLib 2.80.1, or a
distribution's fix for CVE-2024-34397.) Gio.bus_watch_name_on_connection follows the owner,
so the subscriptions move to a restarted vigil.
"""
import argparse
import json
import signal

from gi.repository import Gio, GLib

NAME = "org.vigil.Vigil1"
TASK = NAME + ".Task"
RANDOM_DATA = NAME + ".RandomData"
SIGNALS = ((TASK, "Progress"), (TASK, "Finished"), (RANDOM_DATA, "slow_result"))


def say(*words):
    print(*words, flush=True)


def on_signal(_conn, _sender, path, _interface, member, params):
    task = path.rsplit("/", 1)[-1]
    if member == "Progress":
        fraction, done, total, _rate = params.unpack()
        say("progress", task, "%.3f" % fraction, done, total)
    elif member == "Finished":
        state, result = params.unpack()
        say("finished", task, state, json.dumps(result, sort_keys=True, default=str))
    elif member == "slow_result":
        task, value = params.unpack()
        say("slow_result", task, value)


def watch_vigil(conn):
    """Receive the signals of whichever connection owns NAME now, following it."""
    subscriptions = []

    def follow(owner):
        while subscriptions:
            conn.signal_unsubscribe(subscriptions.pop())
        for interface, member in SIGNALS if owner else ():
            # The unique owner as sender, never NAME: this is the sender check.
            subscriptions.append(
                conn.signal_subscribe(
                    owner, interface, member, None, None, Gio.DBusSignalFlags.NONE, on_signal
                )
            )
        say("owner", owner or "-")

    Gio.bus_watch_name_on_connection(
        conn,
        NAME,
        Gio.BusNameWatcherFlags.NONE,
        lambda _conn, _name, owner: follow(owner),
        lambda _conn, _name: follow(""),
    )


def connect(args):
    if args.address:
        flags = (
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
        )
        return Gio.DBusConnection.new_for_address_sync(args.address, flags, None, None)
    return Gio.bus_get_sync(Gio.BusType.SESSION if args.session else Gio.BusType.SYSTEM, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--system", action="store_true", help="the system bus (the default)")
    where.add_argument("--session", action="store_true")
    where.add_argument("--address")
    args = parser.parse_args()

    watch_vigil(connect(args))

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
