#!/usr/bin/env python3
"""journal_recv.py SOCKET OUT SECONDS - stand in for journald: bind the native journal
datagram socket and append every entry to OUT, one per line, its fields joined by ' | '
(both encodings of the native protocol: KEY=value lines, and KEY, a 64-bit little-endian
length and the value for values with newlines), for at most SECONDS."""
import socket, struct, sys, time


def fields(d):
    out = []
    while d:
        nl = d.find(b"\n")
        if nl < 0:
            break
        line = d[:nl]
        if b"=" in line:
            out.append(line.decode(errors="replace"))
            d = d[nl + 1:]
        else:  # binary: KEY \n len(8, LE) value \n
            n = struct.unpack("<Q", d[nl + 1:nl + 9])[0]
            val = d[nl + 9:nl + 9 + n]
            out.append(line.decode() + "=" + val.decode(errors="replace").replace("\n", "\\n"))
            d = d[nl + 9 + n + 1:]
    return out


path, out, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.2)
open(out + ".ready", "w").close()
end = time.time() + limit
with open(out, "a", buffering=1) as f:
    while time.time() < end:
        try:
            msg = s.recv(1 << 17)
        except socket.timeout:
            continue
        f.write(" | ".join(fields(msg)) + "\n")
