#!/bin/bash
# exec_queue.sh - max_instances: past it a connection is refused (queue 0) with a logged
# reason, or waits in a bounded queue, served first in first out when a child exits,
# refused when the queue is full, closed after queue_timeout. Under load, the children
# alive never outnumber max_instances and every connection is served.
. "$(dirname "$0")/lib.sh"

p_ref=$(free_port) p_q=$(free_port) p_load=$(free_port) p_qt=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: ref, bind: "127.0.0.1:$p_ref", route: refuse}
  - {name: q, bind: "127.0.0.1:$p_q", route: queue}
  - {name: load, bind: "127.0.0.1:$p_load", route: load}
  - {name: qt, bind: "127.0.0.1:$p_qt", route: qtimeout}
routes:
  - {name: refuse, pipeline: [{exec: {command: [/bin/cat], max_instances: 2}}]}
  - name: queue
    pipeline: [{exec: {command: [/bin/cat], max_instances: 1, queue: 2, queue_timeout: 60s}}]
  - name: qtimeout
    pipeline: [{exec: {command: [/bin/cat], max_instances: 1, queue: 2, queue_timeout: 2s}}]
  - name: load
    placement: stealable
    pipeline:
      - exec:
          command: ["$tmp/counted"]
          env: {PATH: "/usr/bin:/bin", COUNT_DIR: "$tmp/count"}
          max_instances: 3
          queue: 64
          queue_timeout: 30s
CONF
# the load route's child: counts itself in while it runs, under a lock, and keeps the
# highest count seen (no sampling: an overlap of any length is caught)
mkdir "$tmp/count"
echo 0 >"$tmp/count/n"
echo 0 >"$tmp/count/max"
cat >"$tmp/counted" <<'SH'
#!/bin/sh
exec 9>>"$COUNT_DIR/lock"
flock 9
read -r n <"$COUNT_DIR/n"
n=$((n + 1))
echo $n >"$COUNT_DIR/n"
read -r m <"$COUNT_DIR/max"
[ $n -gt "$m" ] && echo $n >"$COUNT_DIR/max"
flock -u 9
cat
flock 9
read -r n <"$COUNT_DIR/n"
echo $((n - 1)) >"$COUNT_DIR/n"
SH
chmod +x "$tmp/counted"
start_daemon "$tmp/conf.yaml"
children() { ps --ppid "$pid" -o pid= | wc -l; }

# hold: a client that keeps its connection (and its cat) open until killed
holders=()
hold() {
	socat -u "EXEC:sleep 60" TCP4:127.0.0.1:"$1" &
	started_pids+=($!)
	holders+=($!)
	last_hold=$!
}

# refusal at max_instances, logged
hold $p_ref
h1=$last_hold
hold $p_ref
wait_until 30 eval '[ "$(children)" -ge 2 ]' || fail "two holders did not get their children"
out=$(echo hi | timeout 5 socat -t 2 - TCP4:127.0.0.1:$p_ref 2>/dev/null)
[ -z "$out" ] || fail "a third connection was served past max_instances 2"
wait_until 30 log_has "route=refuse .*end=max_instances" || fail "no access line for the refusal"
log_wait 30 "route refuse: max_instances (2) reached: connection refused" || fail "no log line for the refusal"
kill "$h1"
wait_until 30 eval '[ "$(echo hi | timeout 5 socat -t 2 - TCP4:127.0.0.1:'"$p_ref"' 2>/dev/null)" = hi ]' ||
	fail "no service once a slot was free"

# the queue: two wait behind one running child and are served in order (children:
# the refusal route's second holder, 1, and the queue route's holder). Each waiter is
# in the queue before the next connects: the route logs "connections wait" with the
# count waiting, at most once a second, so B comes a second after A to be seen too.
wait_until 30 eval '[ "$(children)" = 1 ]' || fail "children left: $(children)"
hold $p_q
hq=$last_hold
wait_until 30 eval '[ "$(children)" = 2 ]' || fail "queue route holder has no child"
(echo A | timeout 20 socat -t 10 - TCP4:127.0.0.1:$p_q >"$tmp/A") &
started_pids+=($!)
wa=$!
wait_until 30 log_has "route queue: max_instances (1) reached: connections wait (1 waiting of 2" ||
	fail "A was not queued"
sleep 1.1 # past the once-a-second limit of that line
(echo BB | timeout 20 socat -t 10 - TCP4:127.0.0.1:$p_q >"$tmp/B") &
started_pids+=($!)
wb=$!
wait_until 30 log_has "route queue: max_instances (1) reached: connections wait (2 waiting of 2" ||
	fail "B was not queued behind A"
out=$(echo C | timeout 5 socat -t 2 - TCP4:127.0.0.1:$p_q 2>/dev/null)
[ -z "$out" ] || fail "a connection past the full queue was served"
wait_until 30 log_has "route=queue .*end=max_instances" || fail "no refusal with the queue full"
[ -s "$tmp/A" ] && fail "a queued connection was served while the slot was taken"
kill "$hq"
wait "$wa" "$wb"
[ "$(cat "$tmp/A")" = A ] && [ "$(cat "$tmp/B")" = BB ] || fail "queued connections not served: A='$(cat "$tmp/A")' B='$(cat "$tmp/B")'"
wait_until 30 eval '[ "$(grep -c "route=queue .*queued_ms=" "$log")" = 2 ]' ||
	fail "not 2 access lines with queued_ms"
# FIFO: A came first, so its child was spawned first (pids grow; A sent 2 bytes, B 3)
pid_a=$(grep -o "route=queue .* in=2 .*queued_ms=" "$log" | grep -o "pid=[0-9]*" | cut -d= -f2)
pid_b=$(grep -o "route=queue .* in=3 .*queued_ms=" "$log" | grep -o "pid=[0-9]*" | cut -d= -f2)
[ -n "$pid_a" ] && [ -n "$pid_b" ] && [ "$pid_a" -lt "$pid_b" ] ||
	fail "the queue did not start A (pid '$pid_a') before B (pid '$pid_b')"

# queue_timeout: a waiter is closed after 2 s
wait_until 30 eval '[ "$(children)" = 1 ]' || fail "children left: $(children)"
hold $p_qt
hq=$last_hold
wait_until 30 eval '[ "$(children)" = 2 ]' || fail "queue route holder has no child"
start=$(date +%s%N)
out=$(echo late | timeout 10 socat -t 5 - TCP4:127.0.0.1:$p_qt 2>/dev/null)
ms=$((($(date +%s%N) - start) / 1000000))
[ -z "$out" ] || fail "the waiter was served while the slot was held"
[ "$ms" -ge 1800 ] && [ "$ms" -lt 5000 ] || fail "queue_timeout 2s closed the waiter after $ms ms"
wait_until 30 log_has "route=qtimeout .*end=queue timeout .*queued_ms=" || fail "no access line for the queue timeout"
kill "$hq"

# load: 5 clients at once, 3 children at most, every connection served (5, not more: a
# client gives up after 5 s, and each waits here behind a child's whole life, which a
# loaded machine stretches to seconds)
wait_until 30 eval '[ "$(children)" = 1 ]' || fail "children left: $(children)"
timeout 120 "$load" --connect 127.0.0.1:$p_load --conns 150 --concurrency 5 --size 64 \
	--max-seconds 100 >"$tmp/load.out" || fail "load through the queue: $(cat "$tmp/load.out")"
grep -q "ok=150 failed=0" "$tmp/load.out" || fail "load: $(cat "$tmp/load.out")"
wait_until 30 eval '[ "$(cat "$tmp/count/n")" = 0 ]' || fail "$(cat "$tmp/count/n") load children never ended"
most=$(cat "$tmp/count/max")
# the queue was used: more than one child at a time, never more than max_instances
[ "$most" -ge 2 ] && [ "$most" -le 3 ] || fail "$most load children alive at once with max_instances 3"

kill "${holders[@]}" 2>/dev/null
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: exec max_instances (refusal logged, FIFO queue, queue full, queue_timeout after $ms ms, at most $most children under load)"
