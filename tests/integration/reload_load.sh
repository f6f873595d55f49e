#!/bin/bash
# reload_load.sh - no connection fails while clients run thousands of connections through
# 20 reloads, each of which changes the route's pipeline and adds or removes another
# listener (the loaded listener's socket is kept).
. "$(dirname "$0")/lib.sh"

pa=$(free_port); px=$(free_port)
write_conf() { # $1: 0 or 1 - alternate two configs
	{
		echo "version: 1"
		echo "control: {socket: \"$tmp/control.sock\"}"
		echo "engine: {shards: 2}"
		echo "log: {access_log: false}"
		echo "listeners:"
		echo "  - {name: a, bind: \"127.0.0.1:$pa\", route: r$1}"
		[ "$1" = 1 ] && echo "  - {name: x, bind: \"127.0.0.1:$px\", route: r1}"
		echo "routes:"
		echo "  - {name: r0, placement: stealable, pipeline: [{echo: {}}]}"
		echo "  - {name: r1, placement: round_robin, pipeline: [{acl: {allow: [\"127.0.0.0/8\"]}}, {echo: {}}]}"
	} >"$tmp/conf.yaml"
}
write_conf 0
start_daemon "$tmp/conf.yaml"

"$load" --connect 127.0.0.1:$pa --conns 1000000 --concurrency 8 --size 256 \
	--max-seconds 120 --until-file "$tmp/stop" >"$tmp/load.out" 2>&1 &
loader=$!
started_pids+=("$loader")
for i in $(seq 20); do
	write_conf $((i % 2))
	reload_and_wait
	sleep 0.1
done
touch "$tmp/stop"
wait "$loader"
rc=$?
out=$(cat "$tmp/load.out")
[ "$rc" = 0 ] || fail "connections failed during reloads: $out"
ok=$(sed -E 's/^ok=([0-9]+).*/\1/' <<<"$out")
[ "$ok" -ge 2000 ] || fail "too few connections to mean anything: $out"
[ "$(log_count "reload: generation")" = 20 ] || fail "not every reload applied"
log_has "reload rejected" && fail "a reload was rejected"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: reload under load ($out across 20 reloads)"
