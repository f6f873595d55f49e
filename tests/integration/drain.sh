#!/bin/bash
# drain.sh - SIGTERM closes the listeners at once, lets an open connection finish (it
# still echoes), and exits 0 when it ends; with a short drain_timeout an idle
# connection is cut and the daemon exits on time; SIGQUIT stops at once.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
limits: {drain_timeout: 20s}
listeners:
  - {name: a, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
start_daemon "$tmp/conf.yaml"
coproc LONG { socat - TCP4:127.0.0.1:$port; }
echo one >&"${LONG[1]}"
read -r -t 5 line <&"${LONG[0]}" && [ "$line" = one ] || fail "no echo before SIGTERM"

kill -TERM "$pid"
wait_until 30 log_has "stopping; draining 1 connections" || fail "no draining line"
wait_until 30 eval "! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null" || fail "still accepting while draining"
kill -0 "$pid" || fail "exited with a connection open"
echo two >&"${LONG[1]}"
read -r -t 5 line <&"${LONG[0]}" && [ "$line" = two ] || fail "the draining connection stopped echoing"
exec {LONG[1]}>&-
wait "${LONG_PID:-}" 2>/dev/null # bash unsets it when the coprocess ends
stop_daemon TERM 30
[ "$rc" = 0 ] || fail "exit status $rc after drain"

# drain_timeout cuts an idle connection
: >"$log"
sed -i 's/drain_timeout: 20s/drain_timeout: 1s/' "$tmp/conf.yaml"
start_daemon "$tmp/conf.yaml"
coproc IDLE { socat - TCP4:127.0.0.1:$port; }
echo x >&"${IDLE[1]}"
read -r -t 5 line <&"${IDLE[0]}" || fail "no echo on the idle connection"
t0=$(date +%s%N)
stop_daemon TERM 30
t1=$(date +%s%N)
[ "$rc" = 0 ] || fail "exit status $rc after the drain timeout"
log_wait 30 "drain timeout: closing 1 connections" || fail "no drain timeout line"
ms=$(((t1 - t0) / 1000000))
[ "$ms" -ge 900 ] || fail "stopped after $ms ms, before the 1 s drain timeout"
kill "${IDLE_PID:-}" 2>/dev/null

# SIGQUIT: now, even with a connection and a long drain_timeout
: >"$log"
sed -i 's/drain_timeout: 1s/drain_timeout: 60s/' "$tmp/conf.yaml"
start_daemon "$tmp/conf.yaml"
coproc IDLE2 { socat - TCP4:127.0.0.1:$port; }
echo y >&"${IDLE2[1]}"
read -r -t 5 line <&"${IDLE2[0]}" || fail "no echo before SIGQUIT"
stop_daemon QUIT 15
[ "$rc" = 0 ] || fail "exit status $rc after SIGQUIT"
kill "${IDLE2_PID:-}" 2>/dev/null
echo "PASS: drain (SIGTERM waits for the open connection, drain_timeout ${ms} ms, SIGQUIT)"
