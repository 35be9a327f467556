#!/usr/bin/python3
"""The reference approach (wakeupd), as fast as it goes: an AF_PACKET socket reading ARP, and
for every request aimed at a watched address a wake command run as a new process.

    baseline.py IFACE WAKE_COMMAND BROADCAST IP=MAC [IP=MAC ...]

No cooldown (the benchmark sets vigil's to 0 too); prints one line per wake to stdout.
"""
import socket
import struct
import subprocess
import sys

ETH_P_ARP = 0x0806


def main():
    iface, command, broadcast = sys.argv[1:4]
    hosts = {}
    for pair in sys.argv[4:]:
        ip, mac = pair.split('=')
        hosts[socket.inet_aton(ip)] = mac
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((iface, 0))
    print('ready', flush=True)
    while True:
        frame = s.recv(2048)
        if len(frame) < 42:
            continue
        htype, ptype, hlen, plen, op = struct.unpack('>HHBBH', frame[14:22])
        if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 1):
            continue
        sender_ip = frame[28:32]
        target_ip = frame[38:42]
        if sender_ip == b'\0\0\0\0' or sender_ip == target_ip:
            continue
        mac = hosts.get(target_ip)
        if mac is None:
            continue
        subprocess.run([command, mac, broadcast], check=False)
        print('woke', mac, 'for', socket.inet_ntoa(sender_ip), flush=True)


if __name__ == '__main__':
    main()
