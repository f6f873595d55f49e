#!/bin/bash
# echo.sh - spargio-echo for real on loopback: data comes back intact from many
# concurrent clients (a 4 MiB stream checked by hash too), SIGUSR1 prints counters,
# SIGTERM stops it cleanly with exit status 0.
set -u
bin=${BUILDDIR:-.}/spargio-echo
port=$((10000 + RANDOM % 22000)) # below the ephemeral range
log=$(mktemp)
fail() { echo "FAIL: $*"; cat "$log"; kill "$pid" 2>/dev/null; rm -f "$log"; exit 1; }

"$bin" --listen 127.0.0.1:$port --shards 2 2>"$log" &
pid=$!
for _ in $(seq 100); do
	(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
	sleep 0.05
done

# 50 concurrent clients, each its own line back
for i in $(seq 50); do
	(out=$(echo "client $i" | timeout 5 socat -t 2 - TCP:127.0.0.1:$port)
	 [ "$out" = "client $i" ] || echo "bad $i: '$out'" >>"$log.bad") &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null
[ -s "$log.bad" ] && { cat "$log.bad"; rm -f "$log.bad"; fail "echo mismatch"; }
rm -f "$log.bad"

# a 4 MiB stream, compared by hash
data=$(mktemp)
head -c 4194304 /dev/urandom >"$data"
want=$(sha256sum <"$data" | cut -d' ' -f1)
got=$(timeout 20 socat -t 5 -b 65536 - TCP:127.0.0.1:$port <"$data" | sha256sum | cut -d' ' -f1)
rm -f "$data"
[ "$want" = "$got" ] || fail "4 MiB stream came back different"

kill -USR1 $pid
for _ in $(seq 50); do grep -q tasks_run "$log" && break; sleep 0.05; done
grep -q tasks_run "$log" || fail "no counters on SIGUSR1"

kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
kill -0 $pid 2>/dev/null && fail "still running 5 s after SIGTERM"
wait $pid
rc=$?
[ $rc = 0 ] || fail "exit status $rc after SIGTERM"
rm -f "$log"
echo "PASS: echo (50 clients, 4 MiB hash, counters, clean stop)"
