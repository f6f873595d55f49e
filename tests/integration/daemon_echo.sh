#!/bin/bash
# daemon_echo.sh - spargiod serves the echo route on TCP over IPv4 and IPv6 and on a unix
# socket; every placement works; 4 MiB come back intact; access log lines are written;
# SIGTERM stops it with status 0 and removes its unix socket.
. "$(dirname "$0")/lib.sh"

p4=$(free_port); p6=$(free_port); pp=$(free_port); pr=$(free_port); ps=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: true}
listeners:
  - {name: v4, bind: "127.0.0.1:$p4", route: stealable}
  - {name: v6, bind: "[::1]:$p6", route: stealable}
  - {name: local, bind: "unix:$tmp/echo.sock", route: stealable}
  - {name: pinned, bind: "127.0.0.1:$pp", route: pinned}
  - {name: rr, bind: "127.0.0.1:$pr", route: rr}
  - {name: sticky, bind: "127.0.0.1:$ps", route: sticky}
routes:
  - {name: stealable, placement: stealable, pipeline: [{echo: {}}]}
  - {name: pinned, placement: pinned, pipeline: [{echo: {}}]}
  - {name: rr, placement: round_robin, pipeline: [{echo: {}}]}
  - {name: sticky, placement: sticky, pipeline: [{echo: {}}]}
CONF
start_daemon "$tmp/conf.yaml"

echo_ok TCP4:127.0.0.1:$p4 || fail "echo over IPv4"
echo_ok TCP6:[::1]:$p6 || fail "echo over IPv6"
echo_ok UNIX-CONNECT:$tmp/echo.sock || fail "echo over the unix socket"
for p in $pp $pr $ps; do echo_ok TCP4:127.0.0.1:$p || fail "echo on port $p"; done

for target in 127.0.0.1:$p4 127.0.0.1:$pp 127.0.0.1:$pr 127.0.0.1:$ps unix:$tmp/echo.sock; do
	out=$("$load" --connect "$target" --conns 400 --concurrency 8 --size 512 --max-seconds 30) ||
		fail "load on $target: $out"
done

head -c 4194304 /dev/urandom >"$tmp/big"
want=$(sha256sum <"$tmp/big" | cut -d' ' -f1)
got=$(timeout 20 socat -t 5 -b 65536 - TCP4:127.0.0.1:$p4 <"$tmp/big" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "4 MiB came back different"
wait_until 30 log_has "access listener=v4 route=stealable client=127.0.0.1:[0-9]* duration_ms=[0-9.]* in=4194304 out=4194304" ||
	fail "no access log line for the 4 MiB connection"
log_wait 30 "access listener=local route=stealable client=unix" || fail "no access log line for the unix client"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
[ -e "$tmp/echo.sock" ] && fail "unix socket file left behind"
log_wait 30 "stopped" || fail "no 'stopped' line"
echo "PASS: daemon echo (IPv4, IPv6, unix, four placements, 4 MiB, access log, SIGTERM)"
