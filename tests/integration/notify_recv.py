#!/usr/bin/env python3
"""notify_recv.py SOCKET OUT SECONDS - stand in for systemd: bind the NOTIFY_SOCKET
datagram socket and append every message to OUT, one per line ('\\n' inside a message
becomes ' | '), for at most SECONDS."""
import os, socket, sys, time

path, out, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.2)
open(out + ".ready", "w").close()
end = time.time() + limit
with open(out, "a", buffering=1) as f:
    while time.time() < end:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        f.write(msg.replace("\n", " | ") + "\n")
