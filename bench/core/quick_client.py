#!/usr/bin/python3
"""The tutorial's client stack (dbus-python), driving bench/core/calls: COUNT sequential
quick(16) calls to org.vigil.Vigil1 on the bus at ADDRESS, through a proxy object as the
tutorial does. Prints one JSON object: {"seconds": wall time, "latencies_us": [...]}.

    quick_client.py ADDRESS COUNT
"""
import json
import sys
import time

import dbus

address, count = sys.argv[1], int(sys.argv[2])
bus = dbus.bus.BusConnection(address)
proxy = bus.get_object("org.vigil.Vigil1", "/org/vigil/Vigil1/RandomData", introspect=False)
quick = proxy.get_dbus_method("quick", "org.vigil.Vigil1.RandomData")
latencies = []
start = time.perf_counter()
for _ in range(count):
    t0 = time.perf_counter()
    quick(dbus.Int32(16), signature="i")
    latencies.append((time.perf_counter() - t0) * 1e6)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "latencies_us": latencies}))
