#!/usr/bin/env python3
"""idle_client.py PORT N PATH: hold keep-alive HTTP/1.1 connections to 127.0.0.1:PORT
idle, each after one request for PATH (the whole body read, by Content-Length), in two
steps: N/2 of them, then "half K" on stdout and a wait for a line on stdin; the other
half, then "ok N". Holds them all until stdin closes. The benchmarks read the server's
RSS at both steps: the growth between them over N/2 is the memory each idle connection
costs, without what the first requests warm up once (pools, buffer rings)."""
import asyncio
import sys

port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


async def one(held):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path.encode())
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await r.readexactly(length)
    held.append(w)


async def open_until(held, count):
    while len(held) < count:
        await asyncio.gather(*(one(held) for _ in range(min(500, count - len(held)))))


async def main():
    held = []
    loop = asyncio.get_running_loop()
    await open_until(held, n // 2)
    print("half", len(held), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    await open_until(held, n)
    print("ok", len(held), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)


try:
    asyncio.run(main())
except (OSError, asyncio.IncompleteReadError) as e:
    print("closed:", e, flush=True)
