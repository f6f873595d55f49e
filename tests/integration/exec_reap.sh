#!/bin/bash
# exec_reap.sh - 2,000 connections, each its own /bin/cat, half through the connection
# itself and half through the relay: every one echoed, every child reaped (no zombie in
# /proc), no descriptor or thread left behind in the daemon. Then 1,000 more with the
# exits seen through the poll fallback instead of IORING_OP_WAITID.
. "$(dirname "$0")/lib.sh"

p_sock=$(free_port) p_pipe=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {access_log: false}
listeners:
  - {name: sock, bind: "127.0.0.1:$p_sock", route: sock}
  - {name: pipe, bind: "127.0.0.1:$p_pipe", route: pipe}
routes:
  - {name: sock, placement: stealable, pipeline: [{exec: {command: [/bin/cat], max_instances: 16, queue: 64}}]}
  - {name: pipe, placement: round_robin, pipeline: [{exec: {command: [/bin/cat], stdio: pipe}}]}
CONF
start_daemon "$tmp/conf.yaml"
fds_before=$(ls /proc/$pid/fd | wc -l)
threads_before=$(ls /proc/$pid/task | wc -l)

n=1000
[ "${SP_TEST_SCALE:-}" = tsan ] && n=200 # the TSan build runs the engine ~10x slower
for p in $p_sock $p_pipe; do
	timeout 170 "$load" --connect 127.0.0.1:$p --conns $n --concurrency 8 --size 16 \
		--max-seconds 160 >"$tmp/load.$p" || fail "load on port $p: $(cat "$tmp/load.$p")"
	grep -q "ok=$n failed=0" "$tmp/load.$p" || fail "load on port $p: $(cat "$tmp/load.$p")"
done

# every session ends once its child is reaped: nothing may be left, zombie or alive
wait_until 30 eval '[ -z "$(ps --ppid '"$pid"' -o pid=)" ]' ||
	fail "children left: $(ps --ppid "$pid" -o pid=,stat=,args= | head)"
zombies=0
for d in /proc/[0-9]*; do
	[ "$(awk '/^PPid:/ {print $2}' "$d/status" 2>/dev/null)" = "$pid" ] || continue
	grep -q '^State:.*Z' "$d/status" 2>/dev/null && zombies=$((zombies + 1))
done
[ "$zombies" = 0 ] || fail "$zombies zombies after $((2 * n)) connections"
wait_until 30 eval '[ "$(ls /proc/'"$pid"'/fd | wc -l)" -le '"$fds_before"' ]' ||
	fail "descriptors: $fds_before before, $(ls /proc/$pid/fd | wc -l) after"
[ "$(ls /proc/$pid/task | wc -l)" = "$threads_before" ] || fail "threads: $threads_before before, $(ls /proc/$pid/task | wc -l) after"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"

# The same with the exits seen by a poll on the pidfd and waitid(WNOHANG), the path of
# kernels without IORING_OP_WAITID.
log=$tmp/log.poll
start_daemon "$tmp/conf.yaml" SPARGIOD_EXEC_POLL_PIDFD=1
log_wait 30 "exits seen by polling pidfds" || fail "the poll fallback was not chosen"
for p in $p_sock $p_pipe; do
	timeout 170 "$load" --connect 127.0.0.1:$p --conns $((n / 2)) --concurrency 8 --size 16 \
		--max-seconds 160 >"$tmp/load.$p" || fail "poll fallback, port $p: $(cat "$tmp/load.$p")"
done
wait_until 30 eval '[ -z "$(ps --ppid '"$pid"' -o pid=)" ]' ||
	fail "poll fallback: children left: $(ps --ppid "$pid" -o pid=,stat=,args= | head)"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: exec reaping ($((2 * n)) connections and children, no zombie, no fd left; $n more through the pidfd poll fallback)"
