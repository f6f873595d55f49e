#!/bin/bash
# drain.sh - SIGTERM closes the listeners at once, lets an open connection finish (it
# still echoes), and exits 0 when it ends; with a short drain_timeout an idle
# connection is cut and the daemon exits on time (not before, not seconds after); SIGINT
# does what SIGTERM does; SIGQUIT cuts short a drain in progress, and stops at once.
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
idle_pid=$IDLE_PID # bash unsets IDLE_PID when the coprocess ends
echo x >&"${IDLE[1]}"
read -r -t 5 line <&"${IDLE[0]}" || fail "no echo on the idle connection"
t0=$(date +%s%N)
kill -TERM "$pid"
# the connection is cut (its client ends) at the drain timeout: not before 1 s, and not
# much after it. Margin: 5 s over the timeout, which holds socat's own 0.5 s after the
# EOF and a loaded 2-core machine (unloaded, it ends about 0.6 s after the timeout; at a
# load of 27-30, 1.3 to 2 s): a timeout taken for the default 30 s, or any of 6 s or more,
# still fails (a timeout merely doubled would not: that is what the load costs).
# The process's exit after it is bounded by stop_daemon (a sanitizer's exit takes long).
wait_until 10 eval '! kill -0 "$idle_pid" 2>/dev/null' || fail "the idle connection still open 10 s after SIGTERM"
t1=$(date +%s%N)
stop_daemon TERM 30
[ "$rc" = 0 ] || fail "exit status $rc after the drain timeout"
log_wait 30 "drain timeout: closing 1 connections" || fail "no drain timeout line"
ms=$(((t1 - t0) / 1000000))
[ "$ms" -ge 900 ] || fail "the connection was cut after $ms ms, before the 1 s drain timeout"
[ "$ms" -le 6000 ] || fail "the connection was cut $ms ms after SIGTERM with a 1 s drain timeout"

# SIGINT is SIGTERM: the listener closes, the open connection still echoes, exit 0
# when it ends (drain_timeout 60 s: the stop waits for the connection, not the clock)
: >"$log"
sed -i 's/drain_timeout: 1s/drain_timeout: 60s/' "$tmp/conf.yaml"
start_daemon "$tmp/conf.yaml"
coproc INT { socat - TCP4:127.0.0.1:$port; }
echo three >&"${INT[1]}"
read -r -t 5 line <&"${INT[0]}" && [ "$line" = three ] || fail "no echo before SIGINT"
kill -INT "$pid"
wait_until 30 log_has "Interrupt: stopping; draining 1 connections" || fail "no draining line after SIGINT"
wait_until 30 eval "! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null" || fail "still accepting after SIGINT"
echo four >&"${INT[1]}"
read -r -t 5 line <&"${INT[0]}" && [ "$line" = four ] || fail "the connection stopped echoing after SIGINT"
kill -0 "$pid" || fail "exited after SIGINT with a connection open"
exec {INT[1]}>&-
wait "${INT_PID:-}" 2>/dev/null
t0=$(date +%s%N)
stop_daemon INT 30
[ "$rc" = 0 ] || fail "exit status $rc after SIGINT"
ms_int=$((($(date +%s%N) - t0) / 1000000))

# SIGQUIT cuts short a drain in progress: SIGTERM with a connection open and 60 s to
# drain, then SIGQUIT: out at once, the connection closed
: >"$log"
start_daemon "$tmp/conf.yaml"
coproc HELD { socat - TCP4:127.0.0.1:$port; }
held_pid=$HELD_PID # bash unsets HELD and HELD_PID when the coprocess ends
echo five >&"${HELD[1]}"
read -r -t 5 line <&"${HELD[0]}" || fail "no echo before the drain"
kill -TERM "$pid"
wait_until 30 log_has "stopping; draining 1 connections (up to 60000 ms)" || fail "no draining line"
sleep 0.5 # the drain goes on (it would for 60 s): SIGQUIT comes in the middle of it
kill -0 "$pid" || fail "exited while a connection was open and 60 s to drain"
t0=$(date +%s%N)
stop_daemon QUIT 15 # not the 60 s drain (a sanitizer's exit takes seconds)
ms_quit=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 0 ] || fail "exit status $rc after SIGQUIT in the drain"
log_has "SIGQUIT: closing 1 connections now" || fail "no SIGQUIT line in the drain"
# the daemon closed the held connection: its client ends
wait_until 30 eval '! kill -0 "$held_pid" 2>/dev/null' || fail "the held connection is still open after SIGQUIT"

# SIGQUIT: now, even with a connection and a long drain_timeout
: >"$log"
start_daemon "$tmp/conf.yaml"
coproc IDLE2 { socat - TCP4:127.0.0.1:$port; }
echo y >&"${IDLE2[1]}"
read -r -t 5 line <&"${IDLE2[0]}" || fail "no echo before SIGQUIT"
stop_daemon QUIT 15
[ "$rc" = 0 ] || fail "exit status $rc after SIGQUIT"
kill "${IDLE2_PID:-}" 2>/dev/null
echo "PASS: drain (SIGTERM waits for the open connection, drain_timeout cut at ${ms} ms, SIGINT as SIGTERM (out ${ms_int} ms after the connection ended), SIGQUIT cuts a drain short (${ms_quit} ms), SIGQUIT)"
