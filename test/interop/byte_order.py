#!/usr/bin/python3
"""Calls to vigil in big-endian messages, built by GLib (Gio.DBusMessage).

The bus passes messages on in the byte order the sender chose, so the daemon must read
big-endian as well as little-endian. Prints one JSON object per call:
{"call": NAME, "reply": "ok"|"error", "error": ERROR_NAME, "body": [...]}

    byte_order.py ADDRESS
"""
import json
import sys

from gi.repository import Gio, GLib

NAME = "org.vigil.Vigil1"
ROOT = "/org/vigil/Vigil1"

conn = Gio.DBusConnection.new_for_address_sync(
    sys.argv[1],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
    None,
    None,
)


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def call(label, path, iface, member, signature=None, args=()):
    message = Gio.DBusMessage.new_method_call(NAME, path, iface, member)
    if signature is not None:
        message.set_body(GLib.Variant("(%s)" % signature, args))
    message.set_byte_order(Gio.DBusMessageByteOrder.BIG_ENDIAN)
    reply, _ = conn.send_message_with_reply_sync(message, Gio.DBusSendMessageFlags.NONE, 30000, None)
    body = reply.get_body()
    out = {"call": label, "body": plain(body.unpack()) if body is not None else []}
    if reply.get_message_type() == Gio.DBusMessageType.ERROR:
        out["reply"] = "error"
        out["error"] = reply.get_error_name()
    else:
        out["reply"] = "ok"
    print(json.dumps(out), flush=True)


call("quick16", ROOT + "/RandomData", NAME + ".RandomData", "quick", "i", (16,))
call("quick65537", ROOT + "/RandomData", NAME + ".RandomData", "quick", "i", (65537,))
call("slow", ROOT + "/RandomData", NAME + ".RandomData", "slow", "i", (3,))
call("history", ROOT + "/Tasks", NAME + ".TaskManager", "GetHistory", "u", (3,))
call("daemon", ROOT, "org.freedesktop.DBus.Properties", "GetAll", "s", (NAME + ".Daemon",))
call(
    "set",
    ROOT,
    "org.freedesktop.DBus.Properties",
    "Set",
    "ssv",
    (NAME + ".Daemon", "Version", GLib.Variant("s", "9.9.9")),
)
call(
    "hash",
    ROOT + "/RandomX",
    NAME + ".RandomX",
    "Hash",
    "ayay",
    (b"test key 000", b"This is a test"),
)
call(
    "objects",
    ROOT,
    "org.freedesktop.DBus.ObjectManager",
    "GetManagedObjects",
)
