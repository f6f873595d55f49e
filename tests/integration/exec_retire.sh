#!/bin/bash
# exec_retire.sh - a reload that removes an exec route ends its children: SIGTERM to the
# process group at once, SIGKILL after kill_grace to one that ignores it, connections
# waiting in its queue closed without a spawn; a route that stays (even changed) keeps
# its children running.
. "$(dirname "$0")/lib.sh"

p_keep=$(free_port) p_gone=$(free_port) p_stub=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: keep, bind: "127.0.0.1:$p_keep", route: keep}
  - {name: gone, bind: "127.0.0.1:$p_gone", route: gone}
  - {name: stub, bind: "127.0.0.1:$p_stub", route: stubborn}
routes:
  - name: keep
    pipeline: [{exec: {command: [/bin/sh, -c, 'echo \$\$; exec sleep 60']}}]
  - name: gone
    pipeline: [{exec: {command: [/bin/sh, -c, 'echo \$\$; exec sleep 60'], max_instances: 1, queue: 4}}]
  - name: stubborn
    pipeline:
      - exec: {command: [/bin/sh, -c, 'trap "" TERM; echo \$\$; sleep 60 & echo \$!; wait; wait'], kill_grace: 1s}
CONF
start_daemon "$tmp/conf.yaml"

connect() { # PORT NAME: the child's pid (and its own child's) from its first lines
	socat -u TCP4:127.0.0.1:"$1" - >"$tmp/$2" &
	started_pids+=($!)
	wait_until 30 test -s "$tmp/$2" || fail "no pid from $2"
}
connect $p_keep k1
connect $p_gone g1
connect $p_stub s1
wait_until 30 eval '[ "$(wc -l <"$tmp/s1")" = 2 ]' || fail "no grandchild pid from stubborn"
# one more waits in gone's queue (max_instances 1)
(timeout 20 socat -u TCP4:127.0.0.1:$p_gone - >"$tmp/q1") &
started_pids+=($!)
wait_until 30 log_has "route gone: max_instances (1) reached: connections wait" || fail "nobody waits"

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# the new config: gone and stubborn removed, keep changed
sed -i -e "/name: gone, bind/d" -e "/name: stub, bind/d" -e '/- name: gone$/,$d' "$tmp/conf.yaml"
sed -i 's/exec sleep 60/exec sleep 61/' "$tmp/conf.yaml"
start=$(date +%s%N)
reload_and_wait
log_wait 30 "reload: generation 2" || fail "reload rejected: $(tail -5 "$log")"
g=$(head -1 "$tmp/g1")
wait_until 30 eval '! alive '"$g" || fail "the removed route's child $g still runs"
ms=$((($(date +%s%N) - start) / 1000000))
wait_until 30 log_has "route=gone .*end=route removed .*signal=TERM run_ms=[0-9.]* killed=TERM" ||
	fail "no access line for the child ended by the removal"
# closed without a child: no pid= before queued_ms=
wait_until 30 log_has "route=gone .*end=route removed queued_ms=" ||
	fail "the queued connection was not closed, or got a child of the removed route"
for k in $(cat "$tmp/s1"); do
	wait_until 30 eval '! alive '"$k" || fail "the stubborn child $k survived kill_grace"
done
log_wait 30 "route=stubborn .*end=route removed .*signal=KILL run_ms=[0-9.]* killed=KILL" ||
	fail "no SIGKILL after kill_grace"
alive "$(head -1 "$tmp/k1")" || fail "a child of a route that stays was ended by the reload"
stop_daemon QUIT 10
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: exec_retire (removed route: SIGTERM after $ms ms, SIGKILL after kill_grace, queue closed; kept route untouched)"
