#!/usr/bin/env python3
"""stalled_read.py PORT FILE [REQUEST] - connect to 127.0.0.1:PORT with a small receive
buffer, send REQUEST (an HTTP request line for FILE's name when REQUEST is "http"; nothing
when absent), read nothing until the server's send queue for this connection (tx_queue in
/proc/net/tcp: bytes in flight and not sent yet) stops growing, print it, then read to
the end and check that what came (after an HTTP head, for "http") is FILE byte for byte.
Exits non-zero with the reason when it is not."""
import hashlib
import os
import socket
import sys
import time


def send_queue(server_port, client_port):
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(":")[1], 16) == server_port
                    and int(remote.split(":")[1], 16) == client_port):
                return int(fields[4].split(":")[0], 16)
    return -1


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    http = len(sys.argv) > 3 and sys.argv[3] == "http"
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(15)
    s.connect(("127.0.0.1", port))
    if http:
        name = os.path.basename(path)
        s.sendall(b"GET /%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % name.encode())
    last, same = -1, 0
    for _ in range(100):  # 5 s at most
        time.sleep(0.05)
        q = send_queue(port, s.getsockname()[1])
        same = same + 1 if q == last else 0
        last = q
        if same >= 6 and q > 0:  # unchanged for 300 ms
            break
    print(last, flush=True)  # seen even if a time limit ends the read below
    chunks = []
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    if http:
        head, _, data = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            sys.exit("not a 200: %r" % head[:40])
    with open(path, "rb") as f:
        want = f.read()
    if hashlib.sha256(data).digest() != hashlib.sha256(want).digest():
        sys.exit("body differs (%d bytes, want %d)" % (len(data), len(want)))


main()
