#!/bin/bash
# maxconn_backlog.sh - at max_connections clients wait in the backlog and one leaves it
# per freed slot: with 4 shards (an SO_REUSEPORT group: the waiting clients sit in four
# queues), a limit of 50, 50 held and 40 waiting, closing one held connection serves
# exactly one waiting client and refuses none (refused_limit unchanged), the others
# stay waiting and are all served when slots free. Also a listener's own
# max_connections and limits.per_source (refused, not queued); the cases are in
# maxconn_backlog.py.
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl

pa=$(free_port); pc=$(free_port); ps=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 4}
log: {access_log: false}
limits: {max_connections: 50, per_source: 3}
listeners:
  - {name: a, bind: "127.0.0.1:$pa", route: echo, per_source: 0}
  - {name: capped, bind: "127.0.0.1:$pc", route: echo, max_connections: 5, per_source: 0}
  - {name: src, bind: "127.0.0.1:$ps", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
start_daemon "$tmp/conf.yaml"
out=$(timeout 120 python3 "$(dirname "$0")/maxconn_backlog.py" "$ctl" "$tmp/control.sock" \
	"$pa" "$pc" "$ps" 2>&1) || fail "$out"
kill -0 "$pid" || fail "daemon died"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "$out" | grep -v '^OK$'
echo "PASS: backlog kept at max_connections, listener max_connections, per_source"
