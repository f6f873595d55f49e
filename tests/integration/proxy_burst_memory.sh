#!/bin/bash
# proxy_burst_memory.sh - memory per proxied connection stays bounded after a burst:
# 3000 connections held through the proxy to an echo server, each after one 64 B
# exchange; then bursts on every one at once (1000 B twice, which drains the shards'
# provided-buffer rings, and 64 KiB, which streams). Once they are idle again the
# daemon's RSS may exceed its idle figure by at most a quarter of what the idle
# connections cost (no relay direction keeps a pool buffer through its idle wait, and the
# buffers a burst took go back to the kernel).
. "$(dirname "$0")/lib.sh"
hold=${BUILDDIR:-.}/tests/tools/conn_hold
# a sanitizer's allocator keeps what is freed (ASan's quarantine): RSS says nothing there
if grep -q -- '-fsanitize=' "${BUILDDIR:-.}/Makefile" 2>/dev/null; then
	echo "SKIP: RSS under a sanitizer's allocator"
	exit 77
fi
n=3000
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((n * 2 + 200)) ] || { echo "SKIP: descriptor limit $(ulimit -n)"; exit 77; }

pe=$(free_port) pp=$(free_port)
"$hold" echo --listen "127.0.0.1:$pe" --max-seconds 120 >"$tmp/echo.out" 2>&1 &
started_pids+=($!)
wait_until 10 grep -q ready "$tmp/echo.out" || fail "echo server did not start"

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: false}
upstreams:
  - {name: echo, servers: ["127.0.0.1:$pe"]}
listeners:
  - {name: fe, bind: "127.0.0.1:$pp", backlog: 4096, route: p}
routes:
  - {name: p, placement: round_robin, pipeline: [{proxy: {upstream: echo}}]}
CONF
start_daemon "$tmp/conf.yaml"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

sleep 0.5
r0=$(rss)
coproc client { "$hold" client --connect "127.0.0.1:$pp" --conns $n --size 64 --max-seconds 100; }
started_pids+=("$client_PID")
cin=${client[1]} cout=${client[0]}
read -r -t 60 line <&"$cout" || fail "the client did not open its connections"
[ "$line" = "open $n 0" ] || fail "client: $line"
sleep 1
idle=$(rss)
for size in 1000 1000 65536; do
	echo burst >&"$cin"
	read -r -t 60 line <&"$cout" || fail "no answer to a burst of $size B"
	case $line in "burst $n 0 "*) ;; *) fail "burst of $size B: $line" ;; esac
done
sleep 1
after=$(rss)
echo quit >&"$cin"
echo "RSS KiB: $r0 before, $idle with $n idle connections, $after after the bursts"
cost=$((idle - r0))
[ "$cost" -gt 0 ] || fail "the idle connections cost nothing? ($r0 -> $idle KiB)"
[ $((after - idle)) -le $((cost / 4)) ] ||
	fail "RSS grew by $((after - idle)) KiB over the idle figure after the bursts (idle connections: $cost KiB)"
echo "PASS: proxy burst memory ($((cost * 1024 / n)) B per idle connection, $(((after - r0) * 1024 / n)) B after the bursts)"
