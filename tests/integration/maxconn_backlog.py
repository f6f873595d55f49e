"""maxconn_backlog.py - driven by maxconn_backlog.sh: clients that wait in the backlog at
max_connections, at a listener's own max_connections, and a per_source cap.

usage: maxconn_backlog.py CTL CONTROL_SOCKET PORT_A PORT_CAPPED PORT_SRC [--backlog-only]
A connection is "served" once its echo comes back; "waiting" while nothing (no echo, no
EOF, no reset) comes back; "refused" when it ends unserved.
"""
import json
import select
import socket
import subprocess
import sys
import time

ctl, sock, port_a, port_capped, port_src = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def listener(name):
    out = subprocess.run([ctl, "-s", sock, "--json", "listeners"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    for entry in json.loads(out)["listeners"]:
        if entry["name"] == name:
            return entry
    fail(f"no listener {name}")


def connect(port, src="127.0.0.1"):
    c = socket.socket()
    c.bind((src, 0))
    c.connect(("127.0.0.1", port))  # completes in the kernel's backlog, served or not
    c.sendall(b"x")
    return c


def state(c, timeout):
    """'served', 'refused' or 'waiting' after up to timeout seconds."""
    r, _, _ = select.select([c], [], [], timeout)
    if not r:
        return "waiting"
    try:
        got = c.recv(1)
    except ConnectionResetError:
        return "refused"
    return "served" if got == b"x" else "refused"


def served_within(conns, timeout):
    """Which of conns are served within timeout s (each read once it is readable)."""
    done, deadline = {}, time.monotonic() + timeout
    while len(done) < len(conns) and time.monotonic() < deadline:
        left = [c for c in conns if c not in done]
        r, _, _ = select.select(left, [], [], max(0.0, deadline - time.monotonic()))
        for c in r:
            done[c] = state(c, 0)
    return done


# 1. max_connections 50: 50 held, 40 wait; one freed slot lets exactly one in
held = [connect(port_a) for _ in range(50)]
res = served_within(held, 10)
if len(res) != 50 or set(res.values()) != {"served"}:
    fail(f"the first 50 were not all served: {list(res.values()).count('served')} served")
before = listener("a")
waiting = [connect(port_a) for _ in range(40)]
res = served_within(waiting, 1.5)
if res:
    fail(f"{len(res)} client(s) got an answer past max_connections: {sorted(res.values())}")
held.pop().close()
res = served_within(waiting, 5)
if list(res.values()) != ["served"]:
    fail(f"one freed slot: expected exactly one served, got {sorted(res.values())}")
time.sleep(1)  # the others must still be waiting, not accepted and closed
extra = served_within([c for c in waiting if c not in res], 0.2)
if extra:
    fail(f"one freed slot: {len(extra)} more answered: {sorted(extra.values())}")
mid = listener("a")
if mid["refused_limit"] != before["refused_limit"]:
    fail(f"refused_limit went from {before['refused_limit']} to {mid['refused_limit']}")
if mid["active"] != 50:
    fail(f"{mid['active']} connections open at a limit of 50")
for c in held[:39]:
    c.close()
rest = [c for c in waiting if c not in res]
res2 = served_within(rest, 10)
if len(res2) != 39 or set(res2.values()) != {"served"}:
    fail(f"after 39 more slots freed: {len(res2)} answered of 39: {sorted(res2.values())}")
after = listener("a")
if after["refused_limit"] != before["refused_limit"]:
    fail("refused_limit changed")
print(f"max_connections 50: 50 held + 40 waiting; one slot freed: 1 served, 39 still waiting; "
      f"39 more freed: all 39 served; refused_limit {after['refused_limit']}")
for c in held[39:] + waiting:
    c.close()
if len(sys.argv) > 6 and sys.argv[6] == "--backlog-only":
    print("OK")
    sys.exit(0)

# 2. a listener's own max_connections (5): its sixth client waits, others are served
time.sleep(0.5)
capped = [connect(port_capped) for _ in range(5)]
if len(served_within(capped, 5)) != 5:
    fail("the capped listener did not serve its first 5")
sixth = connect(port_capped)
if served_within([sixth], 1):
    fail("the capped listener served a sixth client")
other = connect(port_a)
if state(other, 5) != "served":
    fail("another listener was not served beside a full one")
capped.pop().close()
if state(sixth, 5) != "served":
    fail("the sixth client was not served when a slot of its listener freed")
print("listener max_connections 5: the sixth waits, another listener serves, served when one ends")
for c in capped + [sixth, other]:
    c.close()

# 3. per_source 3: a fourth connection from 127.0.0.2 is refused, 127.0.0.3 gets in
time.sleep(0.5)
base = listener("src")["refused_per_source"]
two = [connect(port_src, "127.0.0.2") for _ in range(3)]
if len(served_within(two, 5)) != 3:
    fail("127.0.0.2's first 3 were not served")
fourth = connect(port_src, "127.0.0.2")
if state(fourth, 5) != "refused":
    fail("127.0.0.2's fourth connection was not refused")
three = connect(port_src, "127.0.0.3")
if state(three, 5) != "served":
    fail("127.0.0.3 was not served while 127.0.0.2 is at its cap")
n = listener("src")["refused_per_source"] - base
if n != 1:
    fail(f"refused_per_source counted {n}, not 1")
two.pop().close()
time.sleep(0.5)
again = connect(port_src, "127.0.0.2")
if state(again, 5) != "served":
    fail("127.0.0.2 was not served again after one of its connections ended")
# listener `a` has per_source 0: the same address holds more there
many = [connect(port_a, "127.0.0.2") for _ in range(6)]
if len(served_within(many, 5)) != 6:
    fail("per_source 0 on a listener did not lift the cap there")
print("per_source 3: 127.0.0.2's fourth refused, 127.0.0.3 served, 127.0.0.2 again after one "
      "ended; a listener with per_source 0 lets it hold 6")
print("OK")
