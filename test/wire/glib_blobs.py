#!/usr/bin/python3
"""GLib's own D-Bus marshalling (Gio.DBusMessage blobs), as an independent reference for vigil's
wire codec. No bus is involved: messages go through bytes only.

    glib_blobs.py encode   prints one JSON line per case: {"name", "signature", "order",
                           "hex" (a whole message), "value" (the body, normalised)}
    glib_blobs.py decode   reads JSON lines {"name", "hex"} on stdin and prints
                           {"name", "ok", "signature", "member", "path", "value"|"error"}

Values are normalised the same way on both sides: 64-bit integers as decimal strings, byte
arrays as {"bytes": hex}, structures as {"struct": [...]}, dicts as {"dict": [[k, v], ...]},
variants as {"v": signature, "value": ...}.
"""
import json
import sys

from gi.repository import Gio, GLib


def norm(v):
    t = v.get_type_string()
    if t == "v":
        inner = v.get_variant()
        return {"v": inner.get_type_string(), "value": norm(inner)}
    if t == "ay":
        return {"bytes": bytes(v.get_data_as_bytes().get_data()).hex()}
    if t.startswith("a{"):
        entries = [[norm(e.get_child_value(0)), norm(e.get_child_value(1))]
                   for e in (v.get_child_value(i) for i in range(v.n_children()))]
        return {"dict": sorted(entries, key=lambda e: json.dumps(e[0]))}
    if t.startswith("a"):
        return [norm(v.get_child_value(i)) for i in range(v.n_children())]
    if t.startswith("("):
        return {"struct": [norm(v.get_child_value(i)) for i in range(v.n_children())]}
    if t in ("x", "t"):
        return str(v.unpack())
    if t == "h":
        return v.get_handle()
    return v.unpack()


V = GLib.Variant

CASES = [
    ("basics", "ybnqiuxtd", (255, True, -32768, 65535, -2147483648, 4294967295,
                             -9223372036854775808, 18446744073709551615, 1.5)),
    ("strings", "sog", ("grüße 😀", "/org/vigil/Vigil1/Tasks/a1", "a{sv}(iay)")),
    ("empty-string", "s", ("",)),
    ("bytes", "ay", (b"\x00\x01\xfe\xff" * 3,)),
    ("empty-arrays", "ayaiasa{sv}", (b"", [], [], {})),
    ("int-array", "ai", ([1, -1, 2147483647],)),
    ("aligned-array", "yat", (7, [1, 2, 18446744073709551615])),
    ("dict", "a{sv}", ({"a": V("i", 1), "b": V("s", "x"), "c": V("ay", b"\x01\x02")},)),
    ("int-keys", "a{is}", ({-5: "minus", 7: "seven"},)),
    ("struct", "(ib(sd))", ((1, False, ("in", 2.25)),)),
    ("struct-array", "a(yv)", ([(1, V("s", "one")), (2, V("u", 2))],)),
    ("nested-variant", "v", (V("v", V("v", V("as", ["deep"]))),)),
    ("variant-dict", "v", (V("a{sa{sv}}", {"o": {"p": V("t", 5)}}),)),
    ("aay", "aay", ([b"ab", b"", b"cdef"],)),
    ("big-endian-mix", "nqiu", (-2, 65534, -3, 4)),
]


def encode():
    for name, sig, args in CASES:
        for order in ("l", "B"):
            m = Gio.DBusMessage.new_method_call("org.vigil.Vigil1", "/org/vigil/Vigil1",
                                                "org.vigil.Vigil1.Test", "Echo")
            body = V("(%s)" % sig, args)
            m.set_body(body)
            if order == "B":
                m.set_byte_order(Gio.DBusMessageByteOrder.BIG_ENDIAN)
            m.set_serial(7)
            blob = m.to_blob(Gio.DBusCapabilityFlags.NONE)
            value = [norm(body.get_child_value(i)) for i in range(body.n_children())]
            print(json.dumps({"name": name, "signature": sig, "order": order,
                              "hex": bytes(blob).hex(), "value": value}))


def decode():
    for line in sys.stdin:
        case = json.loads(line)
        out = {"name": case["name"]}
        try:
            m = Gio.DBusMessage.new_from_blob(bytes.fromhex(case["hex"]),
                                              Gio.DBusCapabilityFlags.NONE)
            body = m.get_body()
            out["ok"] = True
            out["signature"] = m.get_signature()
            out["member"] = m.get_member()
            out["path"] = m.get_path()
            out["value"] = ([] if body is None else
                            [norm(body.get_child_value(i)) for i in range(body.n_children())])
        except GLib.Error as e:
            out["ok"] = False
            out["error"] = e.message
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    {"encode": encode, "decode": decode}[sys.argv[1]]()
