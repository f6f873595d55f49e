#!/bin/bash
# exec_stop.sh - children across a reload (they keep running, then are reaped) and at
# the daemon's stop: SIGTERM to each child's process group, SIGKILL after kill_grace to
# one that ignores it; connections waiting in the queue are closed; the daemon exits 0
# and leaves no process behind.
. "$(dirname "$0")/lib.sh"

p_hold=$(free_port) p_stub=$(free_port)
write_conf() {
	cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
limits: {drain_timeout: 1s}
listeners:
  - {name: hold, bind: "127.0.0.1:$p_hold", route: hold}
  - {name: stub, bind: "127.0.0.1:$p_stub", route: stubborn}
routes:
  - name: hold
    pipeline: [{exec: {command: [/bin/sh, -c, 'echo \$\$; exec sleep 60'], max_instances: 2, queue: 4}}]
  - name: stubborn
    pipeline:
      - exec: {command: [/bin/sh, -c, 'trap "" TERM; echo \$\$; sleep 60 & echo \$!; wait; wait'], kill_grace: 1s$1}
CONF
}
write_conf ""
start_daemon "$tmp/conf.yaml"

# read the child's pid (and its own child's) from its first lines; keep the connection
connect() { # PORT NAME
	socat -u TCP4:127.0.0.1:"$1" - >"$tmp/$2" &
	started_pids+=($!)
	wait_until 30 test -s "$tmp/$2" || fail "no pid from $2"
}
connect $p_hold h1
connect $p_stub s1

# a reload keeps them running; the new generation serves too
write_conf ", timeout: 30s"
reload_and_wait
log_wait 30 "reload: generation 2" || fail "reload rejected"
kill -0 "$(head -1 "$tmp/h1")" || fail "a child of the old generation died at the reload"
connect $p_hold h2
# two more wait in the queue of generation 2 (max_instances 2: h2 and ...)
connect $p_stub s2
(timeout 20 socat -u TCP4:127.0.0.1:$p_hold - >/dev/null) &
started_pids+=($!)
(timeout 20 socat -u TCP4:127.0.0.1:$p_hold - >/dev/null) &
started_pids+=($!)
(timeout 20 socat -u TCP4:127.0.0.1:$p_hold - >/dev/null) &
started_pids+=($!)
wait_until 30 log_has "route hold: max_instances (2) reached: connections wait" || fail "nobody waits"

kids=$(cat "$tmp/h1" "$tmp/h2" "$tmp/s1" "$tmp/s2")
start=$(date +%s%N)
stop_daemon QUIT 15
ms=$((($(date +%s%N) - start) / 1000000))
[ "$rc" = 0 ] || fail "exit status $rc"
[ "$ms" -lt 6000 ] || fail "stop took $ms ms with kill_grace 1s"
# alive: not gone and not a zombie waiting for init to reap it (its parent died too)
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
for k in $kids; do
	wait_until 30 eval '! alive '"$k" || fail "process $k survived the daemon's stop"
done
grep -qE "route=hold .*end=stopped .*signal=TERM run_ms=[0-9.]* killed=TERM" "$log" ||
	fail "no SIGTERM at the stop"
grep -qE "route=stubborn .*end=stopped .*signal=KILL run_ms=[0-9.]* killed=KILL" "$log" ||
	fail "no SIGKILL after kill_grace"
[ "$(grep -c "route=hold .*end=stopped queued_ms=" "$log")" -ge 1 ] || fail "queued connections not closed at the stop"
log_wait 30 "stopped$" || fail "no clean stop line"
echo "PASS: exec stop (children survive a reload, stop in $ms ms: SIGTERM, SIGKILL after kill_grace, queue closed)"
