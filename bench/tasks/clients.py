#!/usr/bin/python3
"""Clients for bench/tasks/run.ts, in dbus-python and Gio (stacks no one here wrote). Each
command prints one JSON object.

    clients.py churn ADDRESS SECONDS             slow(4096) + Cancel in a loop
    clients.py hog ADDRESS COUNT CONNECTIONS PAUSE
                                                 COUNT slow(4096) over CONNECTIONS, then pause
                                                 PAUSE of them as they get a slot
    clients.py to-running ADDRESS ROUNDS         slow(1) ROUNDS times: ms from the call until
                                                 State is running (10 s at most)
    clients.py managed ADDRESS ROUNDS            GetManagedObjects: reply bytes, ms per call
    clients.py history ADDRESS ROUNDS            GetHistory(0): reply bytes, ms per call
"""
import json
import sys
import time

import dbus
from gi.repository import Gio, GLib

NAME = "org.vigil.Vigil1"
ROOT = "/org/vigil/Vigil1"
RD = ROOT + "/RandomData"
TASK = NAME + ".Task"


def connect(address):
    return dbus.bus.BusConnection(address)


def slow(bus, bits):
    rd = bus.get_object(NAME, RD)
    return str(rd.slow(dbus.Int32(bits), dbus_interface=NAME + ".RandomData"))


def task(bus, task_id):
    return bus.get_object(NAME, ROOT + "/Tasks/" + task_id)


def state(bus, task_id):
    return str(task(bus, task_id).Get(TASK, "State", dbus_interface=dbus.PROPERTIES_IFACE))


def churn(address, seconds):
    bus = connect(address)
    end = time.time() + float(seconds)
    cycles, refused = 0, 0
    while time.time() < end:
        try:
            task(bus, slow(bus, 4096)).Cancel(dbus_interface=TASK)
            cycles += 1
        except dbus.DBusException:
            refused += 1
    return {"cycles": cycles, "refused": refused}


def hog(address, count, conns, pause):
    buses = [connect(address) for _ in range(int(conns))]
    ids, refused = [], 0
    for i in range(int(count)):
        try:
            ids.append(slow(buses[i % len(buses)], 4096))
        except dbus.DBusException:
            refused += 1
    paused = []
    deadline = time.time() + 20
    while len(paused) < int(pause) and time.time() < deadline:
        for task_id in ids:
            if task_id in paused or len(paused) >= int(pause):
                continue
            if state(buses[0], task_id) == "running":
                task(buses[0], task_id).Pause(dbus_interface=TASK)
                paused.append(task_id)
        time.sleep(0.02)
    return {"ids": ids, "refused": refused, "paused": paused}


def to_running(address, rounds):
    bus = connect(address)
    times = []
    for _ in range(int(rounds)):
        start = time.monotonic()
        task_id = slow(bus, 1)
        while state(bus, task_id) != "running" and time.monotonic() - start < 10:
            time.sleep(0.001)
        if state(bus, task_id) not in ("running", "completed"):
            times.append(None)
            task(bus, task_id).Cancel(dbus_interface=TASK)
            break
        times.append((time.monotonic() - start) * 1000)
        task(bus, task_id).Wait(dbus_interface=TASK, timeout=60)
    return {"ms": times}


def gio_calls(address, path, iface, method, args, rounds):
    conn = Gio.DBusConnection.new_for_address_sync(
        address,
        Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
        | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None,
        None,
    )
    sizes, times, errors = [], [], []
    for _ in range(int(rounds)):
        start = time.monotonic()
        try:
            reply = conn.call_sync(
                NAME, path, iface, method, args, None, Gio.DBusCallFlags.NONE, 120000, None
            )
            times.append((time.monotonic() - start) * 1000)
            sizes.append(reply.get_size())
        except GLib.Error as e:
            times.append((time.monotonic() - start) * 1000)
            errors.append(e.message.split(":")[0])
    return {"bytes": sizes, "ms": times, "errors": errors}


def managed(address, rounds):
    return gio_calls(
        address, ROOT, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", None, rounds
    )


def history(address, rounds):
    args = GLib.Variant("(u)", (0,))
    return gio_calls(address, ROOT + "/Tasks", NAME + ".TaskManager", "GetHistory", args, rounds)


COMMANDS = {
    "churn": churn,
    "hog": hog,
    "to-running": to_running,
    "managed": managed,
    "history": history,
}

print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))
