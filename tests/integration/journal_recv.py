#!/usr/bin/env python3
"""journal_recv.py SOCKET OUT SECONDS - stand in for journald where it does not run: bind
the native protocol's datagram socket (/run/systemd/journal/socket, in a mount namespace
of the test's own) and append every entry to OUT, one per line, its fields as
'NAME=value' joined by ' | ', for at most SECONDS. Entries too big for a datagram come as
a memfd (SCM_RIGHTS) and are read from it."""
import array, os, socket, struct, sys, time


def fields(data):
    out, i = [], 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:  # NAME=value
            out.append(line.decode(errors="replace"))
            i = nl + 1
        else:  # NAME, then a 64-bit little-endian length, the value, and '\n'
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            value = data[nl + 9:nl + 9 + n]
            out.append(line.decode() + "=" + value.decode(errors="replace"))
            i = nl + 9 + n + 1
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
            msg, anc, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(4))
        except socket.timeout:
            continue
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fd = array.array("i", cdata[:4])[0]
                msg = os.pread(fd, 1 << 24, 0)
                os.close(fd)
        f.write(" | ".join(v.replace("\n", " ") for v in fields(msg)) + "\n")
