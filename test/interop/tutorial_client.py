#!/usr/bin/python3
"""The dbus-python tutorial's RandomData client, pointed at vigil.

Only the bus name, object path and interface name differ from the tutorial: get the object,
call quick, then call slow and wait in a GLib main loop for the slow_result signal that carries
the id slow returned. Runs on the session bus (DBUS_SESSION_BUS_ADDRESS).

    tutorial_client.py [QUICK_BITS [SLOW_BITS]]
"""
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

BUS_NAME = "org.vigil.Vigil1"
OBJECT_PATH = "/org/vigil/Vigil1/RandomData"
INTERFACE = "org.vigil.Vigil1.RandomData"

quick_bits = int(sys.argv[1]) if len(sys.argv) > 1 else 32
slow_bits = int(sys.argv[2]) if len(sys.argv) > 2 else 8

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SessionBus()
random_data = dbus.Interface(bus.get_object(BUS_NAME, OBJECT_PATH), INTERFACE)

print("quick(%d) = %s" % (quick_bits, random_data.quick(quick_bits)), flush=True)

try:
    random_data.quick(0)
    print("quick(0) did not fail", flush=True)
except dbus.exceptions.DBusException as e:
    print("quick(0) failed: %s" % e.get_dbus_name(), flush=True)

loop = GLib.MainLoop()
results = {}
wanted = []


def on_slow_result(task_id, result):
    results[str(task_id)] = str(result)
    if wanted and wanted[0] in results:
        loop.quit()


def give_up():
    print("timed out waiting for slow_result", flush=True)
    loop.quit()
    return False


random_data.connect_to_signal("slow_result", on_slow_result)
task_id = random_data.slow(slow_bits)
wanted.append(str(task_id))
print("slow(%d) id = %s" % (slow_bits, task_id), flush=True)
GLib.timeout_add_seconds(30, give_up)
if task_id not in results:
    loop.run()
if task_id in results:
    print("slow_result(%s, %s)" % (task_id, results[task_id]), flush=True)
    sys.exit(0)
sys.exit(1)
