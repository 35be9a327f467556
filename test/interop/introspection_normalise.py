#!/usr/bin/python3
"""Reduce D-Bus introspection XML to its comparable structure, as JSON on stdout.

Read from the file named on the command line, or stdin. Members are keyed by name (their order
carries no meaning on the bus); arguments keep their order, with the defaults made explicit
(method args are "in" unless said otherwise; signal args are always "out").
"""
import json
import sys
import xml.etree.ElementTree as ET


def annotations(element):
    return {a.get("name"): a.get("value") for a in element.findall("annotation")}


def method_args(method):
    return [[a.get("name", ""), a.get("type"), a.get("direction", "in")] for a in method.findall("arg")]


def signal_args(signal):
    return [[a.get("name", ""), a.get("type")] for a in signal.findall("arg")]


def interface(element):
    return {
        "annotations": annotations(element),
        "methods": {
            m.get("name"): {"args": method_args(m), "annotations": annotations(m)}
            for m in element.findall("method")
        },
        "signals": {
            s.get("name"): {"args": signal_args(s), "annotations": annotations(s)}
            for s in element.findall("signal")
        },
        "properties": {
            p.get("name"): {
                "type": p.get("type"),
                "access": p.get("access"),
                "annotations": annotations(p),
            }
            for p in element.findall("property")
        },
    }


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    root = ET.fromstring(text)
    if root.tag != "node":
        sys.exit("introspection root element is <%s>, not <node>" % root.tag)
    names = [i.get("name") for i in root.findall("interface")]
    if len(names) != len(set(names)):
        sys.exit("an interface appears twice")
    json.dump(
        {
            "interfaces": {i.get("name"): interface(i) for i in root.findall("interface")},
            "children": sorted(n.get("name") for n in root.findall("node")),
        },
        sys.stdout,
        sort_keys=True,
    )


main()
