#!/bin/bash
# proxy_health.sh - server failures: a refused connect is retried on the next server and
# enough of them mark the server down (logged); active health checks take a stopped
# server down and bring it back up when it listens again (logged, traffic follows); a
# connect to a black hole (a listener whose accept queue is full) ends at connect_timeout
# and is retried elsewhere; `spargioctl server disable|enable` takes a server out of
# rotation and back (kept across a reload, whose generation runs the checks), and
# `upstreams` shows each server's live state and counters.
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl

tags() { timeout 60 python3 "$backend" tags "$@" || fail "client on $1"; }
count() { grep -c "^$1\$" <<<"$2"; }
jget() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

pa=$(free_port); pb=$(free_port); pc=$(free_port); pbh=$(free_port); dead=$(free_port)
start_backend tag $pa A
start_backend tag $pb B
pid_b=$backend_pid
start_backend tag $pc C
start_backend blackhole $pbh
pfo=$(free_port); pone=$(free_port); phc=$(free_port); pto=$(free_port); pto2=$(free_port)

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: true}
upstreams:
  - {name: fo, retries: 1, servers: ["127.0.0.1:$dead", "127.0.0.1:$pa"]}
  - {name: one, retries: 0, servers: ["127.0.0.1:$dead"]}
  - name: hc
    servers: ["127.0.0.1:$pb", "127.0.0.1:$pc"]
    health_check: {interval: 200ms, timeout: 100ms, fall: 2, rise: 2}
  - {name: bh, retries: 0, connect_timeout: 300ms, servers: ["127.0.0.1:$pbh"]}
  - {name: bh2, retries: 1, connect_timeout: 300ms, servers: ["127.0.0.1:$pbh", "127.0.0.1:$pa"]}
listeners:
  - {name: fo, bind: "127.0.0.1:$pfo", route: fo}
  - {name: one, bind: "127.0.0.1:$pone", route: one}
  - {name: hc, bind: "127.0.0.1:$phc", route: hc}
  - {name: bh, bind: "127.0.0.1:$pto", route: bh}
  - {name: bh2, bind: "127.0.0.1:$pto2", route: bh2}
routes:
  - {name: fo, pipeline: [{proxy: {upstream: fo}}]}
  - {name: one, pipeline: [{proxy: {upstream: one}}]}
  - {name: hc, placement: round_robin, pipeline: [{proxy: {upstream: hc}}]}
  - {name: bh, pipeline: [{proxy: {upstream: bh}}]}
  - {name: bh2, pipeline: [{proxy: {upstream: bh2}}]}
CONF
start_daemon "$tmp/conf.yaml"

# failover: every connection reaches A, the refused server is retried past, then down
out=$(tags $pfo 12)
[ "$(count A "$out")" = 12 ] || fail "failover: $(tr '\n' ' ' <<<"$out")"
wait_until 30 log_has "upstream fo: server 127.0.0.1:$dead is down (3 connect failures in a row, last: Connection refused)" ||
	fail "no log line for the refused server going down"
log_wait 30 "route=fo .* server=127.0.0.1:$pa connect_ms=[0-9.]* tries=2" || fail "no access line with tries=2"

# no retries, no other server: the client is closed, the log says why
out=$(tags $pone 1)
[ "$out" = - ] || fail "one dead server: got '$out'"
wait_until 30 log_has "route=one .* end=connect failed upstream=one server=127.0.0.1:$dead tries=1" ||
	fail "no 'connect failed' access line"

# health checks: B stops listening -> down after 2 failed checks; traffic goes to C
out=$(tags $phc 10)
[ "$(count B "$out")" -ge 3 ] || fail "health: B unused while up: $(tr '\n' ' ' <<<"$out")"
kill "$pid_b"
wait "$pid_b" 2>/dev/null
wait_until 30 log_has "upstream hc: server 127.0.0.1:$pb is down (2 health checks failed, last: Connection refused)" ||
	fail "health check did not take B down"
out=$(tags $phc 10)
[ "$(count C "$out")" = 10 ] || fail "health: traffic to a down server: $(tr '\n' ' ' <<<"$out")"
up=$("$ctl" -s "$tmp/control.sock" --json upstreams) || fail "upstreams: $up"
srv='[s for u in j["upstreams"] if u["name"]=="hc" for s in u["servers"] if s["address"]=="127.0.0.1:'$pb'"][0]'
[ "$(jget "$up" "$srv['state']")" = down ] || fail "upstreams shows B as: $up"
[ "$(jget "$up" "$srv['checks_failed'] >= 2")" = True ] || fail "upstreams check counts: $up"
# B listens again -> up after 2 good checks; it gets traffic again
start_backend tag $pb B
wait_until 30 log_has "upstream hc: server 127.0.0.1:$pb is up (2 health checks passed)" ||
	fail "health check did not bring B back up"
out=$(tags $phc 10)
[ "$(count B "$out")" -ge 3 ] || fail "health: B unused after coming back: $(tr '\n' ' ' <<<"$out")"

# server disable / enable through spargioctl; upstreams shows the state and counters
"$ctl" -s "$tmp/control.sock" server disable hc 127.0.0.1:$pb >/dev/null || fail "server disable"
wait_until 30 log_has "upstream hc: server 127.0.0.1:$pb disabled by the operator" || fail "no log line for disable"
out=$(tags $phc 10)
[ "$(count C "$out")" = 10 ] || fail "disabled server still used: $(tr '\n' ' ' <<<"$out")"
up=$("$ctl" -s "$tmp/control.sock" --json upstreams)
[ "$(jget "$up" "$srv['state']")" = disabled ] || fail "upstreams after disable: $up"
[ "$(jget "$up" "$srv['total'] >= 6")" = True ] || fail "upstreams total: $up"
# a reload keeps the operator's choice (and the health checks move to the new generation)
reload_and_wait
log_wait 30 "reload: generation 2" || fail "reload rejected"
up=$("$ctl" -s "$tmp/control.sock" --json upstreams)
[ "$(jget "$up" "$srv['state']")" = disabled ] || fail "disable lost across the reload: $up"
out=$(tags $phc 6)
[ "$(count C "$out")" = 6 ] || fail "disabled server used after the reload: $(tr '\n' ' ' <<<"$out")"
n0=$(jget "$up" "$srv['checks_ok']")
wait_until 30 eval '[ "$(jget "$("$ctl" -s "$tmp/control.sock" --json upstreams)" "$srv[\"checks_ok\"]")" -gt "$n0" ]' ||
	fail "no health check ran in the new generation"
"$ctl" -s "$tmp/control.sock" server enable hc 127.0.0.1:$pb >/dev/null || fail "server enable"
out=$(tags $phc 10)
[ "$(count B "$out")" -ge 3 ] || fail "enabled server unused: $(tr '\n' ' ' <<<"$out")"
ans=$("$ctl" -s "$tmp/control.sock" --json server disable hc 127.0.0.1:1) && fail "unknown server accepted: $ans"
grep -q "no server" <<<"$ans" || fail "unknown server answer: $ans"
ans=$("$ctl" -s "$tmp/control.sock" --json server disable nope 127.0.0.1:1) && fail "unknown upstream accepted"
grep -q "no upstream" <<<"$ans" || fail "unknown upstream answer: $ans"
fo='[s for u in j["upstreams"] if u["name"]=="fo" for s in u["servers"]]'
up=$("$ctl" -s "$tmp/control.sock" --json upstreams)
[ "$(jget "$up" "$fo[0]['connect_failures'] >= 3 and $fo[0]['state'] == 'down'")" = True ] ||
	fail "upstreams for the refused server: $up"
[ "$(jget "$up" "$fo[1]['total']")" = 12 ] || fail "upstreams total for A: $up"

# black hole: the connect times out at 300 ms; with a retry the next server answers
start=$(date +%s%N)
out=$(tags $pto 1)
ms=$((($(date +%s%N) - start) / 1000000))
[ "$out" = - ] || fail "black hole answered '$out'"
[ "$ms" -ge 250 ] || fail "black hole: closed after $ms ms, before connect_timeout (300 ms)"
wait_until 30 log_has "route=bh .* end=connect failed upstream=bh server=127.0.0.1:$pbh tries=1" ||
	fail "no access line for the black hole"
# how long the daemon held it, from its own access line: the client's clock above also
# counts python's start, seconds on a loaded machine. Margin: 300 ms + 2.7 s of a pass.
held=$(grep -o "route=bh .*duration_ms=[0-9.]*" "$log" | tail -1 | sed 's/.*duration_ms=//')
awk -v t="$held" 'BEGIN { exit !(t >= 250 && t <= 3000) }' ||
	fail "black hole: the daemon held it $held ms, connect_timeout is 300 ms"
out=$(tags $pto2 1)
[ "$out" = A ] || fail "black hole then retry: got '$out'"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: proxy health (failover, passive down, health checks down/up, disable/enable, black hole timeout)"
