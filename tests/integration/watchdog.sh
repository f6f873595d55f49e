#!/bin/bash
# watchdog.sh - WATCHDOG=1 goes to the service manager only while every shard makes
# progress: with WATCHDOG_USEC=400000 (a tick every 200 ms) the pings come; a shard
# wedged for 3 s stops them (at most the one ping already earned when it stalled), the
# stall is logged, and the pings come back once the shard runs again. The shard is
# wedged by the test build's hook (tests/tools/spargiod-hooks, SPARGIOD_TEST_STALL:
# src/daemon/testhook.h), which marks the stall's begin and end in the notify stream.
. "$(dirname "$0")/lib.sh"
bin=${BUILDDIR:-.}/tests/tools/spargiod-hooks
[ -x "$bin" ] || fail "no $bin (make check builds it)"

port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: a, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, placement: round_robin, pipeline: [{echo: {}}]}
CONF
msgs=$tmp/notify.txt
python3 "$(dirname "$0")/notify_recv.py" "$tmp/notify.sock" "$msgs" 120 &
started_pids+=("$!")
wait_until 30 test -e "$msgs.ready" || fail "notify receiver did not start"

# shard 1 stalls 3 s, 2 s after the first tick
start_daemon "$tmp/conf.yaml" NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=400000 \
	SPARGIOD_TEST_STALL=1:2000:3000
wait_until 60 grep -qx "X_SPARGIOD_TEST_STALL=end" "$msgs" || fail "the test hook's stall did not end"
# pings_between FROM TO: WATCHDOG=1 lines after the line FROM and before the line TO
pings_between() { awk -v a="$1" -v b="$2" '$0 == a {on = 1; next} $0 == b {on = 0} on && $0 == "WATCHDOG=1" {n++} END {print n + 0}' "$msgs"; }
before=$(awk '$0 == "X_SPARGIOD_TEST_STALL=begin" {exit} $0 == "WATCHDOG=1" {n++} END {print n + 0}' "$msgs")
during=$(pings_between X_SPARGIOD_TEST_STALL=begin X_SPARGIOD_TEST_STALL=end)
[ "$before" -ge 3 ] || fail "only $before pings in the 2 s before the stall"
# 3 s at a tick every 200 ms would be about 15 pings; the ping answered just before the
# stall may still be sent once
[ "$during" -le 1 ] || fail "$during WATCHDOG=1 pings while a shard stalled for 3 s"
wait_until 30 log_has "watchdog: a shard did not answer within a tick" || fail "the stall was not logged"
wait_until 30 eval '[ "$(pings_between X_SPARGIOD_TEST_STALL=end none)" -ge 3 ]' ||
	fail "the pings did not come back after the stall"
for _ in 1 2 3 4; do echo_ok TCP4:127.0.0.1:$port || fail "no echo after the stall"; done
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: watchdog ($before pings before, $during during a 3 s shard stall, back after it)"
