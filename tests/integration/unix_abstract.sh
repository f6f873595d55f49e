#!/bin/bash
# unix_abstract.sh - a `unix:@name` listener is bound in the abstract namespace (no file
# anywhere, listed as @name in /proc/net/unix) and served; gone once the daemon stops.
. "$(dirname "$0")/lib.sh"

name="spargiod-test-$$-$RANDOM"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: abs, bind: "unix:@$name", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
start_daemon "$tmp/conf.yaml"
bound() { awk -v n="@$name" '$NF == n' /proc/net/unix | grep -q .; }
bound || fail "no @$name in /proc/net/unix"
[ -e "@$name" ] || [ -e "$tmp/@$name" ] && fail "a file was made for the abstract socket"
for _ in 1 2 3; do echo_ok ABSTRACT-CONNECT:"$name" || fail "no echo through unix:@$name"; done
wait_until 30 log_has "access listener=abs route=echo client=unix .* in=[0-9]* out=[0-9]* end=closed" ||
	fail "no access line for the abstract socket"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
bound && fail "@$name still bound after the stop"
echo "PASS: unix:@name (abstract socket bound, served, released at stop)"
