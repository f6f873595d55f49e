#!/bin/bash
# emfile.sh - out of file descriptors (RLIMIT_NOFILE reached), spargiod keeps the waiting
# clients in the backlog, retries accepting every 100 ms without spinning, and serves
# them once descriptors are free again.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
engine: {shards: 2}
control: {socket: "$tmp/control.sock"}
log: {access_log: false}
listeners:
  - {name: a, bind: "127.0.0.1:$port", backlog: 256, route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
(ulimit -n 48 && exec "$bin" -c "$tmp/conf.yaml") >>"$log" 2>&1 &
pid=$!
started_pids+=("$pid")
wait_until 30 log_has "generation 1" || fail "no start"

holders=()
for i in $(seq 60); do
	(echo "hold $i"; sleep 30) | socat - TCP4:127.0.0.1:$port >"$tmp/out.$i" 2>/dev/null &
	holders+=("$!")
	started_pids+=("$!")
done
wait_until 30 log_has "accept: Too many open files; retrying in 100 ms" || fail "no EMFILE line"
served=$(grep -l hold "$tmp"/out.* 2>/dev/null | wc -l)
[ "$served" -lt 60 ] || fail "all 60 served with a 48-fd limit?"
cpu_before=$(awk '{print $14 + $15}' /proc/$pid/stat)
sleep 1
cpu_after=$(awk '{print $14 + $15}' /proc/$pid/stat)
[ $((cpu_after - cpu_before)) -le 20 ] || fail "$((cpu_after - cpu_before)) CPU ticks in 1 s at EMFILE (spinning?)"
kill -0 "$pid" || fail "died at EMFILE"

# free descriptors: end the served connections; the waiting ones get their turn
for i in $(seq 60); do grep -q hold "$tmp/out.$i" 2>/dev/null && kill "${holders[$((i - 1))]}" 2>/dev/null; done
wait_until 30 eval '[ "$(grep -l hold "$tmp"/out.* | wc -l)" -ge 60 ]' ||
	fail "only $(grep -l hold "$tmp"/out.* | wc -l) of 60 clients served after descriptors came back"
for h in "${holders[@]}"; do kill "$h" 2>/dev/null; done
echo_ok TCP4:127.0.0.1:$port || fail "echo after EMFILE"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: EMFILE (first $served of 60 served at a 48-fd limit, $((cpu_after - cpu_before)) CPU ticks in 1 s, the rest served later)"
