#!/usr/bin/python3
"""The tutorial's client stack (dbus-python), driving bench/core/calls: COUNT sequential
quick(16) calls to org.vigil.Vigil1 on the bus at ADDRESS, through a proxy object as the
tutorial does. Prints one JSON object: {"seconds": wall time, "latencies_us": [...], "errors": {name: count}}, and
with --starts also "starts_ns": when each call began (CLOCK_MONOTONIC, as Node's hrtime).

    quick_client.py ADDRESS COUNT [--starts]     (SIGINT: stop early, print what was measured)
"""
import json
import signal
import sys
import time

import dbus

address, count = sys.argv[1], int(sys.argv[2])
with_starts = "--starts" in sys.argv[3:]
# SIGINT ends the loop early and still prints what was measured (bench/core/hostile uses it).
stopped = False


def stop(*_):
    global stopped
    stopped = True


signal.signal(signal.SIGINT, stop)
bus = dbus.bus.BusConnection(address)
proxy = bus.get_object("org.vigil.Vigil1", "/org/vigil/Vigil1/RandomData", introspect=False)
quick = proxy.get_dbus_method("quick", "org.vigil.Vigil1.RandomData")
latencies = []
starts = []
errors = {}
print("ready", file=sys.stderr, flush=True)
start = time.perf_counter()
for _ in range(count):
    if stopped:
        break
    if with_starts:
        starts.append(time.monotonic_ns())
    t0 = time.perf_counter()
    try:
        quick(dbus.Int32(16), signature="i")
    except dbus.exceptions.DBusException as e:
        # A service too busy to answer (the reference ones under a huge body) times out.
        errors[e.get_dbus_name()] = errors.get(e.get_dbus_name(), 0) + 1
    latencies.append((time.perf_counter() - t0) * 1e6)
seconds = time.perf_counter() - start
out = {"seconds": seconds, "latencies_us": latencies, "errors": errors}
if with_starts:
    out["starts_ns"] = starts
print(json.dumps(out))
