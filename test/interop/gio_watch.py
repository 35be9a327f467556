#!/usr/bin/python3
"""GLib's own D-Bus client stack (Gio, through gi) watching vigil.

A Gio.DBusObjectManagerClient follows /org/vigil/Vigil1; the script calls slow(BITS) through a
Gio.DBusProxy, then reports what GLib saw, one event per line:
  initial PATH            objects present at start (from GetManagedObjects)
  added PATH IFACE...     InterfacesAdded
  state STATE             the task's State, from the proxy's property cache (PropertiesChanged)
  progress P DONE TOTAL   the task's Progress signal
  finished STATE RESULT   the task's Finished signal
  removed PATH            InterfacesRemoved
Exits 0 once the task was added, finished and removed; 1 after TIMEOUT seconds.

    gio_watch.py ADDRESS BITS TIMEOUT
"""
import sys

from gi.repository import Gio, GLib

NAME = "org.vigil.Vigil1"
ROOT = "/org/vigil/Vigil1"

address, bits, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = Gio.DBusConnection.new_for_address_sync(
    address,
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
    None,
    None,
)
manager = Gio.DBusObjectManagerClient.new_sync(
    conn, Gio.DBusObjectManagerClientFlags.NONE, NAME, ROOT, None, None, None
)
loop = GLib.MainLoop()
task_path = None
seen = {"added": False, "finished": False, "removed": False}


def say(line):
    print(line, flush=True)


for obj in sorted(manager.get_objects(), key=lambda o: o.get_object_path()):
    say("initial %s" % obj.get_object_path())


def on_properties_changed(proxy, changed, invalidated):
    state = changed.unpack().get("State")
    if state is not None:
        say("state %s" % state)


def on_signal(proxy, sender, signal, params):
    if signal == "Progress":
        p, done, total, _rate = params.unpack()
        say("progress %.4f %d %d" % (p, done, total))
    elif signal == "Finished":
        state, result = params.unpack()
        say("finished %s %s" % (state, result.get("result")))
        seen["finished"] = True


def watch_task(obj):
    proxy = obj.get_interface("org.vigil.Vigil1.Task")
    proxy.connect("g-properties-changed", on_properties_changed)
    proxy.connect("g-signal", on_signal)


def on_added(_manager, obj):
    path = obj.get_object_path()
    ifaces = sorted(i.get_interface_name() for i in obj.get_interfaces())
    say("added %s %s" % (path, " ".join(ifaces)))
    if path == task_path and not seen["added"]:
        seen["added"] = True
        watch_task(obj)


def on_removed(_manager, obj):
    say("removed %s" % obj.get_object_path())
    if obj.get_object_path() == task_path:
        seen["removed"] = True
        loop.quit()


manager.connect("object-added", on_added)
manager.connect("object-removed", on_removed)

random_data = Gio.DBusProxy.new_sync(
    conn, Gio.DBusProxyFlags.NONE, None, NAME, ROOT + "/RandomData", NAME + ".RandomData", None
)
task_id = random_data.call_sync("slow", GLib.Variant("(i)", (bits,)), 0, -1, None).unpack()[0]
task_path = ROOT + "/Tasks/" + task_id
say("slow %s" % task_id)
# The task may have been announced before its id was known here.
already = manager.get_object(task_path)
if already is not None and not seen["added"]:
    seen["added"] = True
    watch_task(already)


def give_up():
    say("timeout")
    loop.quit()
    return False


GLib.timeout_add_seconds(timeout, give_up)
loop.run()
sys.exit(0 if all(seen.values()) else 1)
