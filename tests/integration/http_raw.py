#!/usr/bin/env python3
"""http_raw.py - a raw HTTP client for the files tests: sends exactly the bytes given,
reads everything the server sends back, reports whether the server closed.

  http_raw.py PORT [options] < request-bytes
    --timeout S     stop reading after S seconds (default 5)
    --trickle S     send the request one byte every S seconds (slowloris)
    --rcvbuf N      a small receive buffer (set before connecting)
    --hold S        read nothing for S seconds after sending (a client that stalls)
    --elapsed       print the seconds until the server closed instead of the bytes

Writes the response bytes to stdout as they arrive. Exit status 0: the server closed the connection;
3: it was still open when the timeout passed; 4: the connection was reset.
"""
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    port = int(args.pop(0))
    timeout, trickle, rcvbuf, hold, elapsed = 5.0, 0.0, 0, 0.0, False
    while args:
        a = args.pop(0)
        if a == "--timeout":
            timeout = float(args.pop(0))
        elif a == "--trickle":
            trickle = float(args.pop(0))
        elif a == "--rcvbuf":
            rcvbuf = int(args.pop(0))
        elif a == "--hold":
            hold = float(args.pop(0))
        elif a == "--elapsed":
            elapsed = True
        else:
            sys.exit("unknown option " + a)
    req = sys.stdin.buffer.read()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    start = time.monotonic()
    deadline = start + timeout
    try:
        if trickle:
            for i in range(len(req)):
                if time.monotonic() > deadline:
                    break
                s.sendall(req[i:i + 1])
                time.sleep(trickle)
        else:
            s.sendall(req)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server gave up on us: what follows tells how
    if hold:
        time.sleep(hold)
        deadline = time.monotonic() + timeout
    status = 3
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        except ConnectionResetError:
            status = 4
            break
        if not d:
            status = 0
            break
        if not elapsed:  # as it comes: a caller may look before we are done
            sys.stdout.buffer.write(d)
            sys.stdout.buffer.flush()
    if elapsed:
        print("%.2f" % (time.monotonic() - start))
    return status


if __name__ == "__main__":
    sys.exit(main())
