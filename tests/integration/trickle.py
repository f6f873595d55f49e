#!/usr/bin/env python3
"""trickle.py PORT COUNT SIZE GAP_MS - a client of small messages: sends COUNT numbered
lines of SIZE bytes to 127.0.0.1:PORT, each in its own segment (TCP_NODELAY) GAP_MS
apart, starting 0.3 s after the connect, then half closes and reads the answer. Prints
the sha256 hex of what it sent, then the answer."""
import hashlib
import socket
import sys
import time

port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
gap = float(sys.argv[4]) / 1000
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
time.sleep(0.3)  # a proxy connects on: its first receive then finds one message, not a pile
h = hashlib.sha256()
for i in range(count):
    line = b"%0*d\n" % (size - 1, i)
    s.sendall(line)
    h.update(line)
    time.sleep(gap)
s.shutdown(socket.SHUT_WR)
answer = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    answer += b
print(h.hexdigest())
print(answer.decode().strip())
