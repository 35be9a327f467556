#!/usr/bin/python3
"""Baseline for bench/core: the dbus-python tutorial's service stack (dbus.service.Object on
a GLib main loop) serving the same quick(i) -> s under the same names as vigil, on the session
bus in DBUS_SESSION_BUS_ADDRESS. Prints "ready" once it owns the name.
"""
import random

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

BUS_NAME = "org.vigil.Vigil1"
OBJECT_PATH = "/org/vigil/Vigil1/RandomData"
INTERFACE = "org.vigil.Vigil1.RandomData"


class RandomData(dbus.service.Object):
    def __init__(self, bus_name):
        super().__init__(bus_name, OBJECT_PATH)

    @dbus.service.method(INTERFACE, in_signature="i", out_signature="s")
    def quick(self, bits):
        if bits < 1 or bits > 65536:
            raise ValueError("bits out of range")
        return str(random.SystemRandom().getrandbits(bits))


dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
name = dbus.service.BusName(BUS_NAME, dbus.SessionBus(), do_not_queue=True)
service = RandomData(name)
print("ready", flush=True)
GLib.MainLoop().run()
