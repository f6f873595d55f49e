#!/bin/bash
# exec_timeout.sh - children that misbehave: one that ignores SIGTERM gets SIGKILL once
# timeout and kill_grace have passed (its whole process group with it); one that never
# reads holds the client back (back-pressure, no unbounded buffering) until its timeout;
# one that floods its output is held back by a client that does not read, and dies of
# SIGPIPE (or fails on a reset connection, or of our SIGTERM) when that client goes.
. "$(dirname "$0")/lib.sh"

p_stub=$(free_port) p_term=$(free_port) p_noread=$(free_port) p_flood=$(free_port)
p_sflood=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: stub, bind: "127.0.0.1:$p_stub", route: stubborn}
  - {name: term, bind: "127.0.0.1:$p_term", route: polite}
  - {name: noread, bind: "127.0.0.1:$p_noread", route: noread}
  - {name: flood, bind: "127.0.0.1:$p_flood", route: flood}
  - {name: sflood, bind: "127.0.0.1:$p_sflood", route: sflood}
routes:
  - name: stubborn
    pipeline:
      - exec:
          command: [/bin/sh, -c, 'trap "" TERM; echo \$\$; sleep 60 & echo \$!; wait; wait']
          timeout: 1s
          kill_grace: 1s
  - {name: polite, pipeline: [{exec: {command: [/bin/sleep, "60"], timeout: 1s, kill_grace: 30s}}]}
  - {name: noread, pipeline: [{exec: {command: [/bin/sleep, "60"], stdio: pipe, timeout: 2s}}]}
  - {name: flood, pipeline: [{exec: {command: [/usr/bin/yes], stdio: pipe}}]}
  - {name: sflood, pipeline: [{exec: {command: [/usr/bin/yes]}}]}
CONF
start_daemon "$tmp/conf.yaml"

# ignores SIGTERM, and so does its own child (an ignored signal is inherited): both get
# SIGKILL after timeout + kill_grace
start=$(date +%s%N)
timeout 15 socat -t 10 -u TCP4:127.0.0.1:$p_stub - >"$tmp/stub" || fail "stubborn: socat failed"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -ge 1900 ] && [ "$ms" -lt 8000 ] || fail "the stubborn child ended after $ms ms, not ~2 s"
wait_until 30 log_has "route=stubborn .*end=timeout pid=[0-9]* signal=KILL run_ms=[0-9.]* killed=KILL" ||
	fail "no access line with SIGKILL after the timeout"
log_wait 30 "route=stubborn .*signal=KILL" || fail "stubborn child not killed"
grandchild=$(sed -n 2p "$tmp/stub")
[ -n "$grandchild" ] || fail "no grandchild pid"
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
wait_until 30 eval '! alive '"$grandchild" || fail "the process group outlived the timeout"

# a plain child: SIGTERM at the timeout is enough
timeout 15 socat -t 10 -u TCP4:127.0.0.1:$p_term - >/dev/null
wait_until 30 log_has "route=polite .*end=timeout pid=[0-9]* signal=TERM run_ms=[0-9.]* killed=TERM" ||
	fail "no SIGTERM at the timeout"

# never reads: the client can send only what fits in the buffers, until the timeout
head -c 8388608 /dev/zero >"$tmp/8m"
timeout 15 socat -t 5 -u FILE:"$tmp/8m" TCP4:127.0.0.1:$p_noread 2>/dev/null
wait_until 30 log_has "route=noread .*end=timeout" || fail "the child that never reads was not timed out"
in=$(grep -o "route=noread .* in=[0-9]*" "$log" | grep -o "in=[0-9]*$" | cut -d= -f2)
[ "$in" -le 262144 ] || fail "the daemon took $in bytes for a child that reads nothing (no back-pressure)"

# floods: a client that reads nothing holds it back; the daemon does not buffer its output
for p in $p_flood $p_sflood; do
	exec 3<>/dev/tcp/127.0.0.1/$p
	sleep 1
	rss1=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
	sleep 1
	rss2=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
	[ $((rss2 - rss1)) -lt 4096 ] || fail "daemon RSS grew from $rss1 to $rss2 kB with a flooding child"
	exec 3<&- # the client goes: the child's next write gets SIGPIPE
done
# the client gone, its group gets SIGTERM too: whichever comes first ends it
wait_until 30 grep -qE "route=flood .*end=client gone .*signal=(PIPE|TERM)" "$log" ||
	fail "the flooding child (pipe) did not end with SIGPIPE or SIGTERM"
# with the connection itself as stdout, the client's close resets it: EPIPE or ECONNRESET
# in the child, SIGTERM from us (the reset seen by our poll)
wait_until 30 grep -qE "route=sflood .*(signal=PIPE|signal=TERM|exit=1)" "$log" || fail "the flooding child (socket) did not end"
out=$(grep -o "route=flood .* out=[0-9]*" "$log" | grep -o "out=[0-9]*$" | cut -d= -f2)
[ "$out" -lt 67108864 ] || fail "$out bytes relayed to a client that read none"

zombies=$(ps --ppid "$pid" -o stat= | grep -c Z)
[ "$zombies" = 0 ] || fail "$zombies zombie children"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: exec timeouts (SIGKILL after ${ms} ms for a child ignoring SIGTERM, back-pressure with $in bytes taken, floods held back)"
