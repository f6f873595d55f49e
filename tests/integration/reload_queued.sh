#!/bin/bash
# reload_queued.sh - a reload that removes a listener serves the clients waiting in its
# backlog instead of resetting them: 4 shards (the listener is a reuseport group of 4
# sockets, each closed by its shard after taking what waits in its queue), clients kept
# waiting on it by max_connections, then a reload that drops the listener and raises
# the limit: every waiting client gets its echo, and the address refuses new ones.
. "$(dirname "$0")/lib.sh"

pk=$(free_port); px=$(free_port)
conf() { # conf LIMIT WITH_X
	cat <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 4}
limits: {max_connections: $1}
listeners:
  - {name: keep, bind: "127.0.0.1:$pk", route: echo}
$([ "$2" = yes ] && echo "  - {name: gone, bind: \"127.0.0.1:$px\", route: echo}")
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
}
conf 3 yes >"$tmp/conf.yaml"
start_daemon "$tmp/conf.yaml"

coproc CLIENTS {
	python3 -c '
import select, socket, sys
pk, px = int(sys.argv[1]), int(sys.argv[2])
def conn(p):
    c = socket.create_connection(("127.0.0.1", p)); c.sendall(b"x"); return c
held = [conn(pk) for _ in range(3)]
for c in held:
    if c.recv(1) != b"x": print("held not served", flush=True); sys.exit(1)
waiting = [conn(px) for _ in range(8)]
r, _, _ = select.select(waiting, [], [], 1.0)
if r: print("served past the limit", flush=True); sys.exit(1)
print("waiting", flush=True)
sys.stdin.readline()  # the reload is done
got = {"served": 0, "reset": 0, "eof": 0, "silent": 0}
for c in waiting:
    r, _, _ = select.select([c], [], [], 5.0)
    if not r: got["silent"] += 1; continue
    try: b = c.recv(1)
    except ConnectionResetError: got["reset"] += 1; continue
    got["served" if b == b"x" else "eof"] += 1
print(" ".join(f"{k}={v}" for k, v in got.items()), flush=True)
' "$pk" "$px"
}
started_pids+=("$CLIENTS_PID")
read -r -t 15 line <&"${CLIENTS[0]}" || fail "clients did not report"
[ "$line" = waiting ] || fail "clients: $line"
conf 100 no >"$tmp/conf.yaml"
reload_and_wait
log_has "reload: generation 2" || fail "reload rejected"
echo done >&"${CLIENTS[1]}"
read -r -t 30 line <&"${CLIENTS[0]}" || fail "clients did not report after the reload"
[ "$line" = "served=8 reset=0 eof=0 silent=0" ] ||
	fail "the clients queued on the removed listener: $line (want all 8 served)"
(exec 3<>"/dev/tcp/127.0.0.1/$px") 2>/dev/null && fail "the removed listener still accepts"
echo_ok TCP4:127.0.0.1:$pk || fail "the kept listener does not serve"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: reload removing a listener served its 8 queued clients ($line)"
