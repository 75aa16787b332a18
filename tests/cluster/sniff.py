"""Captures the TCP payloads of chosen ports on every link of a namespace.

    ip netns exec HUB python3 sniff.py OUTFILE PORT...

Runs until SIGTERM; appends each IPv4 TCP payload whose source or destination
port is one of PORTs to OUTFILE (in capture order, as one byte stream). Run in
the hub namespace, it sees every frame that crosses the cluster's bridge (each
twice: in on one veth, out on another). A raw AF_PACKET socket, so no tcpdump
is needed.
"""
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003


def main():
    out_path, ports = sys.argv[1], {int(p) for p in sys.argv[2:]}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.settimeout(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    with open(out_path, "wb") as out:
        while not stop:
            try:
                frame = s.recv(65535)
            except socket.timeout:
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6:
                continue
            total = struct.unpack("!H", ip[2:4])[0]
            tcp = ip[ihl:total]
            if len(tcp) < 20:
                continue
            sport, dport = struct.unpack("!HH", tcp[:4])
            if sport not in ports and dport not in ports:
                continue
            payload = tcp[(tcp[12] >> 4) * 4:]
            if payload:
                out.write(payload)
                out.flush()


if __name__ == "__main__":
    main()
