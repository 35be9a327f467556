#!/usr/bin/python3
"""Big RandomX.HashBatch jobs through dbus-python (a client no one here wrote, and one that
marshals megabytes in C, so a test can send many 4 MiB calls quickly).

    hashbatch.py ADDRESS JOBS INPUTS INPUT_BYTES COMPLETE

Submits JOBS batches of INPUTS inputs of INPUT_BYTES each (light mode, one key). The last
COMPLETE jobs run to the end; every other one is cancelled once it has hashed something (it
was a real job: submitted, recorded, started). Prints {"ids": [...], "completed": [...]}.
"""
import json
import sys
import time

import dbus

NAME = "org.vigil.Vigil1"
TASK = NAME + ".Task"

address, jobs, count, size, complete = sys.argv[1], *map(int, sys.argv[2:6])
bus = dbus.bus.BusConnection(address)
rx = bus.get_object(NAME, "/org/vigil/Vigil1/RandomX")
key = dbus.ByteArray(b"test key 000")
ids, completed = [], []
for j in range(jobs):
    inputs = dbus.Array(
        [dbus.ByteArray(bytes([(i + j) % 256]) * size) for i in range(count)], signature="ay"
    )
    path = rx.HashBatch(key, inputs, {"mode": "light"}, dbus_interface=NAME + ".RandomX")
    task = bus.get_object(NAME, path)
    ids.append(str(path).rsplit("/", 1)[1])
    if j >= jobs - complete:
        task.Wait(dbus_interface=TASK, timeout=600)
        completed.append(ids[-1])
        continue
    props = dbus.Interface(task, "org.freedesktop.DBus.Properties")
    deadline = time.time() + 60
    while props.Get(TASK, "Done") < 1 and props.Get(TASK, "State") in ("queued", "running"):
        if time.time() > deadline:
            raise SystemExit("job %s did not start hashing" % ids[-1])
        time.sleep(0.01)
    try:
        task.Cancel(dbus_interface=TASK)
    except dbus.DBusException:
        pass  # it finished first
print(json.dumps({"ids": ids, "completed": completed}))
