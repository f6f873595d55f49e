#!/bin/bash
# status.sh - what spargiod(8) and spargioctl(8) promise of the status answer and the
# command line: `spargiod -h` prints its usage and exits 0; status's uptime_s counts
# seconds since the start, connections the sessions open now, accepting_paused is true
# exactly while max_connections is reached, reloads_failed counts rejected reloads.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_checks.sh"

out=$("$bin" -h) || fail "spargiod -h exited $?"
grep -q '^usage: spargiod ' <<<"$out" || fail "spargiod -h printed no usage: $out"
"$bin" --no-such-option >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] || fail "an unknown option exited $rc, want 2"

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
t0=$EPOCHREALTIME
start_daemon "$tmp/conf.yaml"

# uptime_s: seconds since the start, by the clock. Each answer is bracketed by the time
# before the command and after it, so the bounds are exact (the daemon started after t0):
# u2 - u1 lies between (before 2 - after 1) and (after 2 - before 1), u2 below after 2 - t0.
a0=$EPOCHREALTIME
u1=$(status_field uptime_s) || fail "no status"
a1=$EPOCHREALTIME
sleep 1.2
b0=$EPOCHREALTIME
u2=$(status_field uptime_s)
b1=$EPOCHREALTIME
awk -v u1="$u1" -v u2="$u2" -v t0="$t0" -v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" \
	'BEGIN { d = u2 - u1; exit !(u1 > 0 && d >= b0 - a1 - 0.001 && d <= b1 - a0 + 0.001 && u2 <= b1 - t0 + 0.001) }' ||
	fail "uptime_s $u1 then $u2: not the clock's (t0 $t0, first asked $a0-$a1, second $b0-$b1)"

# connections: the sessions open now; accepting_paused: false below the limit
[ "$(status_field connections)" = 0 ] || fail "connections $(status_field connections) when idle"
[ "$(status_field accepting_paused)" = False ] || fail "accepting_paused when idle"
hold_echo c1 TCP4:127.0.0.1:$port || fail "c1: no echo"
hold_echo c2 TCP4:127.0.0.1:$port || fail "c2: no echo"
[ "$(status_field connections)" = 2 ] || fail "connections $(status_field connections) with 2 open"
[ "$(status_field accepting_paused)" = False ] || fail "accepting_paused at 2 of 3"
# at the limit: paused, and back when one ends
hold_echo c3 TCP4:127.0.0.1:$port || fail "c3: no echo"
wait_until 30 eval '[ "$(status_field accepting_paused)" = True ]' ||
	fail "accepting_paused $(status_field accepting_paused) at max_connections 3"
[ "$(status_field connections)" = 3 ] || fail "connections $(status_field connections) with 3 open"
release c3 || fail "c3 did not end"
wait_until 30 eval '[ "$(status_field accepting_paused)" = False ]' || fail "still paused below the limit"
wait_until 30 eval '[ "$(status_field connections)" = 2 ]' || fail "connections $(status_field connections) after one ended"
release c1; release c2
wait_until 30 eval '[ "$(status_field connections)" = 0 ]' || fail "connections $(status_field connections) after all ended"

# reloads_failed: counts rejections only
[ "$(status_field reloads_failed)" = 0 ] || fail "reloads_failed $(status_field reloads_failed) at start"
reload_and_wait
[ "$(status_field reloads_failed)" = 0 ] || fail "a good reload counted as failed"
cp "$tmp/conf.yaml" "$tmp/good.yaml"
sed -i 's/route: echo}/route: nowhere}/' "$tmp/conf.yaml"
reload_and_wait
reload_and_wait
log_has "reload rejected; generation 2 keeps serving" || fail "the broken config was not rejected"
[ "$(status_field reloads_failed)" = 2 ] || fail "reloads_failed $(status_field reloads_failed) after 2 rejections"
[ "$(status_field generation)" = 2 ] || fail "generation $(status_field generation) after rejections"
cp "$tmp/good.yaml" "$tmp/conf.yaml"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: status (-h exits 0, uptime_s $u2, connections, accepting_paused at the limit, reloads_failed)"
