#!/bin/bash
# files_burst_memory.sh - memory per idle keep-alive connection stays bounded after a
# burst of requests: 2000 connections to files, one GET each, idle; then one more GET on
# every one at once, twice (2000 requests answered side by side, each with a work area;
# the default placement, stealable, where an area may go back to another shard's pool). Once
# they are idle again (a watchdog tick gives each connection's request buffer back) the
# daemon's RSS may exceed its idle figure by at most a quarter of what the idle
# connections cost: the work areas of the burst went back to the kernel.
. "$(dirname "$0")/lib.sh"
hold=${BUILDDIR:-.}/tests/tools/conn_hold
# a sanitizer's allocator keeps what is freed (ASan's quarantine): RSS says nothing there
if grep -q -- '-fsanitize=' "${BUILDDIR:-.}/Makefile" 2>/dev/null; then
	echo "SKIP: RSS under a sanitizer's allocator"
	exit 77
fi
n=2000
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((n + 200)) ] || { echo "SKIP: descriptor limit $(ulimit -n)"; exit 77; }

pf=$(free_port)
mkdir -p "$tmp/www"
head -c 64 /dev/urandom >"$tmp/www/64b"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: false}
listeners:
  - {name: web, bind: "127.0.0.1:$pf", backlog: 4096, route: files}
routes:
  - {name: files, pipeline: [{files: {root: "$tmp/www"}}]}
CONF
start_daemon "$tmp/conf.yaml"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

# a warm-up: the pools and the file cache, as a first burst leaves them
printf 'burst\n' | "$hold" client --connect "127.0.0.1:$pf" --conns 500 --http /64b --max-seconds 30 >/dev/null ||
	fail "warm-up requests failed"
sleep 1
r0=$(rss)
coproc client { "$hold" client --connect "127.0.0.1:$pf" --conns $n --http /64b --max-seconds 100; }
started_pids+=("$client_PID")
cin=${client[1]} cout=${client[0]}
read -r -t 60 line <&"$cout" || fail "the client did not open its connections"
[ "$line" = "open $n 0" ] || fail "client: $line"
sleep 1.5
idle=$(rss)
for i in 1 2; do
	echo burst >&"$cin"
	read -r -t 60 line <&"$cout" || fail "no answer to burst $i"
	case $line in "burst $n 0 "*) ;; *) fail "burst $i: $line" ;; esac
done
sleep 1.5
after=$(rss)
echo quit >&"$cin"
echo "RSS KiB: $r0 before, $idle with $n idle connections, $after after a request on each at once"
cost=$((idle - r0))
[ "$cost" -gt 0 ] || fail "the idle connections cost nothing? ($r0 -> $idle KiB)"
[ $((after - idle)) -le $((cost / 4)) ] ||
	fail "RSS grew by $((after - idle)) KiB over the idle figure after the burst (idle connections: $cost KiB)"
echo "PASS: files burst memory ($((cost * 1024 / n)) B per idle connection, $(((after - r0) * 1024 / n)) B after the burst)"
