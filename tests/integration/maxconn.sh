#!/bin/bash
# maxconn.sh - limits.max_connections: at the limit accepting pauses (a new client waits
# in the backlog, gets no echo and costs no CPU: no busy loop), and resumes when a
# connection ends, serving the waiting client.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
limits: {max_connections: 3}
listeners:
  - {name: a, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
start_daemon "$tmp/conf.yaml"

for i in 1 2 3; do
	socat -u "EXEC:sleep 30" TCP4:127.0.0.1:$port &
	eval "hold$i=\$!"
	started_pids+=("$!")
done
wait_until 30 log_has "max_connections (3) reached: accepting paused" || fail "no pause at 3 connections"

# the fourth waits: no answer while paused
cpu_before=$(awk '{print $14 + $15}' /proc/$pid/stat)
(echo waiting; sleep 10) | timeout 15 socat - TCP4:127.0.0.1:$port >"$tmp/fourth" &
fourth=$!
started_pids+=("$fourth")
sleep 1.5
[ -s "$tmp/fourth" ] && fail "a client was served past max_connections"
cpu_after=$(awk '{print $14 + $15}' /proc/$pid/stat)
[ $((cpu_after - cpu_before)) -le 20 ] || fail "paused daemon used $((cpu_after - cpu_before)) ticks in 1.5 s (busy loop?)"

kill "$hold1"
wait_until 30 grep -q waiting "$tmp/fourth" || fail "the waiting client was not served after a slot freed"
log_wait 30 "accepting resumed" || fail "no resume line"
kill "$hold2" "$hold3" "$fourth" 2>/dev/null
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: max_connections (pause at 3 with $((cpu_after - cpu_before)) CPU ticks in 1.5 s, resume serves the waiting client)"
