#!/usr/bin/env python3
"""proxy_backend.py - the servers behind spargiod's proxy in the integration tests.

Usage: proxy_backend.py MODE PORT [ARG]   (listens on 127.0.0.1:PORT, prints "ready")
  tag NAME     each connection gets "NAME\\n"; the connection stays open until the
               client closes (least_conn tests hold connections with it)
  hash         reads to EOF, answers the sha256 hex of what it read, closes (half close)
  slowhash S   as hash, but reads nothing for S seconds first, with a small receive
               buffer (a stalled reader: what is sent to it backs up at once)
  send FILE    sends FILE, then closes
  record FILE  appends the first 256 bytes each connection sends (a PROXY header and a
               line) to FILE as one hex line, then echoes everything until EOF
  reset        reads a line, then closes with a reset (SO_LINGER 0)
  sendreset FILE  sends FILE, then closes with a reset (mid-stream for a relay that
               has not passed it all on yet)
  blackhole    listen(0) with its accept queue filled by its own clients and never
               accepts: further connects get no answer to their SYN (connect timeout)
Each connection is served on its own thread; the process runs until killed.

Client: proxy_backend.py tags PORT N [hold|close] [SOURCE_IP]
  opens N connections to 127.0.0.1:PORT one after the other (from SOURCE_IP if given),
  prints the tag line each one reads; `hold` keeps them all open until the end.
"""
import hashlib
import socket
import struct
import sys
import threading
import time


def serve(conn, mode, arg):
    with conn:
        if mode == "tag":
            conn.sendall((arg + "\n").encode())
            while conn.recv(65536):
                pass
        elif mode in ("hash", "slowhash"):
            if mode == "slowhash":
                time.sleep(float(arg))
            h = hashlib.sha256()
            while True:
                b = conn.recv(1 << 20)
                if not b:
                    break
                h.update(b)
            conn.sendall((h.hexdigest() + "\n").encode())
        elif mode == "send":
            with open(arg, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    conn.sendall(b)
        elif mode == "record":
            first = b""
            while len(first) < 256:
                b = conn.recv(256 - len(first))
                if not b:
                    break
                first += b
                conn.sendall(b)
                if first.count(b"\n") >= 2 and not first.startswith(b"\r\n\r\n"):
                    break  # a v1 header line and the client's line
                if first.startswith(b"\r\n\r\n") and len(first) >= 16:
                    need = 16 + struct.unpack("!H", first[14:16])[0]
                    if len(first) >= need and b"\n" in first[need:]:
                        break
            with open(arg, "a") as f:
                f.write(first.hex() + "\n")
            while True:
                b = conn.recv(65536)
                if not b:
                    break
                conn.sendall(b)
        elif mode == "reset":
            conn.recv(4096)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "sendreset":
            with open(arg, "rb") as f:
                conn.sendall(f.read())
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def tags(port, n, hold, src):
    held = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(10)
        if src:
            s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        line = b""
        while not line.endswith(b"\n"):
            b = s.recv(100)
            if not b:
                break
            line += b
        print(line.decode().strip() or "-", flush=True)
        if hold:
            held.append(s)
        else:
            s.close()
    for s in held:
        s.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "tags":
        src = sys.argv[5] if len(sys.argv) > 5 else None
        tags(port, int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "hold", src)
        return
    arg = sys.argv[3] if len(sys.argv) > 3 else ""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "slowhash":  # accepted sockets inherit it: a window of a few KiB
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ls.bind(("127.0.0.1", port))
    if mode == "blackhole":
        ls.listen(0)
        fillers = []
        for _ in range(4):  # backlog 0 holds one; the others wait in SYN retries
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        print("ready", flush=True)
        while True:
            time.sleep(3600)
    ls.listen(128)
    print("ready", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, mode, arg), daemon=True).start()


if __name__ == "__main__":
    main()
