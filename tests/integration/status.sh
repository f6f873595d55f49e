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
t0=$(date +%s%N)
start_daemon "$tmp/conf.yaml"

# uptime_s: a number of seconds that grows with the clock, never beyond the time since
# this test started the daemon (plus 0.5 s for rounding and the answer's trip)
u1=$(status_field uptime_s) || fail "no status"
sleep 1.2
u2=$(status_field uptime_s)
t1=$(date +%s%N)
awk -v a="$u1" -v b="$u2" -v w="$(((t1 - t0) / 1000000))" \
	'BEGIN { exit !(a >= 0 && b - a >= 1.1 && b - a < 1.2 + w / 1000 && b <= w / 1000 + 0.5) }' ||
	fail "uptime_s $u1 then $u2 over 1.2 s, $(((t1 - t0) / 1000000)) ms since the start"

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
