#!/bin/bash
# files_keepalive_burst.sh - every request of a burst on thousands of held keep-alive
# connections is answered: 3000 connections to files, one GET each, idle long enough for
# the watchdog to shed each one's request buffer (its receive cancelled, a poll armed in
# its place); then one more GET on every one at once, twice, the second right as the
# watchdog ticks again. With the default placement (stealable: a session's ops may be in
# flight on another shard's ring when its watchdog cancels them) and with round_robin.
# Not one connection may be closed or left without its answer, and once the client closes
# them all, the daemon must see every one end (its descriptors go back to what they were).
. "$(dirname "$0")/lib.sh"
hold=${BUILDDIR:-.}/tests/tools/conn_hold
n=3000
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((n + 200)) ] || { echo "SKIP: descriptor limit $(ulimit -n)"; exit 77; }

pf=$(free_port)
mkdir -p "$tmp/www"
head -c 64 /dev/urandom >"$tmp/www/64b"
for placement in stealable round_robin; do
	cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: false}
listeners:
  - {name: web, bind: "127.0.0.1:$pf", backlog: 4096, route: files}
routes:
  - {name: files, placement: $placement,
     pipeline: [{files: {root: "$tmp/www", keepalive_timeout: 60s, header_timeout: 2s}}]}
CONF
	: >"$log" # start_daemon waits for this daemon's start-up line, not the last one's
	start_daemon "$tmp/conf.yaml"
	fds() { ls "/proc/$pid/fd" | wc -l; }
	fd0=$(fds)
	coproc client { "$hold" client --connect "127.0.0.1:$pf" --conns $n --http /64b --max-seconds 120; }
	started_pids+=("$client_PID")
	cin=${client[1]} cout=${client[0]}
	read -r -t 60 line <&"$cout" || fail "$placement: the client did not open its connections"
	[ "$line" = "open $n 0" ] || fail "$placement: open: $line"
	# header_timeout 2 s: the watchdog ticks every 500 ms, and sheds from the second tick
	for pause in 2 0.5 0.25 0 0; do
		sleep "$pause"
		echo burst >&"$cin"
		read -r -t 60 line <&"$cout" || fail "$placement: a burst was not answered in 60 s (hung)"
		case $line in "burst $n 0 "*) ;; *) fail "$placement: burst after ${pause} s idle: $line" ;; esac
	done
	echo quit >&"$cin"
	wait "$client_PID" 2>/dev/null || true
	# the file (one per shard's cache) may stay open; a session that missed its end may not
	wait_until 30 eval '[ "$(fds)" -le $((fd0 + 4)) ]' ||
		fail "$placement: $(($(fds) - fd0)) descriptors more than before, 30 s after the client closed its connections (sessions that never saw their end)"
	stop_daemon
	[ "$rc" = 0 ] || fail "$placement: exit status $rc after SIGTERM"
	! grep -q 'Sanitizer' "$log" || fail "$placement: a sanitizer report"
	echo "$placement: $n connections, 5 bursts, every request answered, every end seen"
done
echo "PASS: files keep-alive bursts"
