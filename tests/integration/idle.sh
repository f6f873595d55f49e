#!/bin/bash
# idle.sh - an idle spargiod sleeps: holding 300 idle keep-alive connections, its
# threads (named: sp-shard-N, sp-log, sp-helper-N) together wake a few times a second
# at most (the log writer waits on a futex once lines stop coming, the main thread
# ticks only for systemd, the files watchdogs tick together); and a line logged after
# the quiet spell still reaches the log at once.
. "$(dirname "$0")/lib.sh"

p=$(free_port); pf=$(free_port)
mkdir -p "$tmp/www"
echo hello >"$tmp/www/index.html"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: true}
listeners:
  - {name: echo, bind: "127.0.0.1:$p", route: echo}
  - {name: web, bind: "127.0.0.1:$pf", route: web}
routes:
  - {name: echo, placement: stealable, pipeline: [{echo: {}}]}
  - {name: web, placement: round_robin, pipeline: [{files: {root: "$tmp/www"}}]}
CONF
start_daemon "$tmp/conf.yaml"
for i in 1 2 3; do echo_ok TCP4:127.0.0.1:$p || fail "echo $i"; done
log_wait 30 "access listener=echo" || fail "no access log line"
names=$(cat /proc/"$pid"/task/*/comm | sort | tr '\n' ' ')
for want in sp-log sp-shard-0 sp-shard-1 sp-helper-0; do
	[[ " $names" == *" $want "* ]] || fail "no thread named $want (threads: $names)"
done

# context switches of the daemon's threads (the main one and those named sp-*: not a
# sanitizer runtime's own), voluntary and not
switches() {
	local t n=0
	for t in /proc/"$pid"/task/*; do
		[ "${t##*/}" = "$pid" ] || [[ "$(cat "$t/comm" 2>/dev/null)" == sp-* ]] || continue
		n=$((n + $(awk '/ctxt_switches/ { n += $2 } END { print n + 0 }' "$t/status" 2>/dev/null || echo 0)))
	done
	echo "$n"
}
# 300 idle keep-alive connections, one request each, held open by a coprocess
coproc HOLD {
	python3 -c '
import socket, sys
held = []
for i in range(300):
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    while not got.endswith(b"hello\n"):
        got += c.recv(4096)
    held.append(c)
print("ok", len(held), flush=True)
sys.stdin.read()
' "$pf"
}
read -r -t 30 held <&"${HOLD[0]}" || fail "could not open the idle connections"
[ "$held" = "ok 300" ] || fail "idle connections: $held"
# the writer naps for 100 ms after the last line before it sleeps, and each idle
# connection gives its request buffer back at its second tick (500 ms apart): let both
# happen, with room for a loaded machine, before counting
sleep 2
before=$(switches)
sleep 3
after=$(switches)
woke=$((after - before))
# Before, the writer woke 500 times a second, the main thread once, and each shard
# for every idle connection's watchdog tick (twice a second each, on its own phase).
# Now the watchdogs tick together on a 500 ms grid: 2 shards x 2 ticks a second, 12 in
# 3 s; the bound leaves room for a loaded machine (TSan builds running beside it).
[ "$woke" -le 60 ] || fail "idle daemon with 300 idle connections woke $woke times in 3 s"

# the writer, asleep, is woken by the next line
echo_ok TCP4:127.0.0.1:$p || fail "echo after the quiet spell"
n=$(log_count "access listener=echo")
[ "$n" -ge 4 ] || wait_until 3 eval '[ "$(log_count "access listener=echo")" -ge 4 ]' ||
	fail "the access line after the quiet spell did not reach the log within 3 s"

exec {HOLD[1]}>&-
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
log_wait 30 "stopped" || fail "no 'stopped' line"
echo "PASS: idle daemon with 300 idle keep-alive connections woke $woke times in 3 s (threads named sp-*); logging resumes after the quiet spell"
