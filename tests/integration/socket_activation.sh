#!/bin/bash
# socket_activation.sh - a `systemd:NAME` listener takes the socket systemd passed under
# that name (LISTEN_FDS/LISTEN_FDNAMES, here from systemd-socket-activate) and serves it;
# a name that was not passed is a start-up error.
. "$(dirname "$0")/lib.sh"
command -v systemd-socket-activate >/dev/null || { echo "SKIP: no systemd-socket-activate"; exit 77; }

port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: web, bind: "systemd:web", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
systemd-socket-activate -l 127.0.0.1:$port --fdname=web "$bin" -c "$tmp/conf.yaml" >>"$log" 2>&1 &
pid=$!
started_pids+=("$pid")
# systemd-socket-activate starts spargiod on the first connection, then execs it
wait_until 30 echo_ok TCP4:127.0.0.1:$port || fail "no echo through the activated socket"
log_wait 30 "generation 1, 1 listeners" || fail "no start-up line"
out=$("$load" --connect 127.0.0.1:$port --conns 200 --concurrency 4) || fail "load: $out"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"

sed -i 's/systemd:web/systemd:other/' "$tmp/conf.yaml"
out=$(LISTEN_FDS=0 timeout 10 "$bin" -c "$tmp/conf.yaml" 2>&1); rc=$?
[ "$rc" = 3 ] && grep -q "no socket named 'other' was passed by systemd" <<<"$out" ||
	fail "missing systemd socket: exit $rc: $out"
echo "PASS: socket activation (systemd:web served, missing name refused)"
