#!/bin/bash
# exec_group.sh - what an exec child leaves behind is ended with it: a `sleep 45 &` left by
# a child that exits gets SIGTERM and the session ends at once (stdio socket and pipe); a
# double-forked grandchild that ignores SIGTERM, orphaned and with its fds closed, gets
# SIGKILL after kill_grace and holds its max_instances slot until then; a client that
# leaves (a reset) takes the running child and its grandchild with it; a daemon stopped
# with SIGTERM while such groups are being ended exits in kill_grace, not after the
# drain, and leaves no process behind. A grandchild that leaves the group (setsid) is
# not ended, but cannot hold the session open.
. "$(dirname "$0")/lib.sh"

p_bg=$(free_port) p_bgp=$(free_port) p_det=$(free_port) p_hold=$(free_port)
p_holdp=$(free_port) p_stub=$(free_port) p_stubp=$(free_port) p_esc=$(free_port)
p_escp=$(free_port)
leave='echo $$; sleep 45 & echo $!; exit 0'
detach='echo $$; trap "" TERM; (exec sleep 45) </dev/null >/dev/null 2>&1 & echo $!; exit 0'
stay='echo $$; sleep 45 & echo $!; wait'
stub='echo $$; trap "" TERM; sleep 45 & echo $!; exit 0'
escape='echo $$; setsid sleep 45 & echo $!; sleep 1; exit 0'
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
limits: {drain_timeout: 30s}
listeners:
  - {name: bg, bind: "127.0.0.1:$p_bg", route: bg}
  - {name: bgp, bind: "127.0.0.1:$p_bgp", route: bgp}
  - {name: det, bind: "127.0.0.1:$p_det", route: det}
  - {name: hold, bind: "127.0.0.1:$p_hold", route: hold}
  - {name: holdp, bind: "127.0.0.1:$p_holdp", route: holdp}
  - {name: stub, bind: "127.0.0.1:$p_stub", route: stub}
  - {name: stubp, bind: "127.0.0.1:$p_stubp", route: stubp}
  - {name: esc, bind: "127.0.0.1:$p_esc", route: esc}
  - {name: escp, bind: "127.0.0.1:$p_escp", route: escp}
routes:
  - {name: bg, pipeline: [{exec: {command: [/bin/sh, -c, '$leave'], kill_grace: 3s}}]}
  - {name: bgp, pipeline: [{exec: {command: [/bin/sh, -c, '$leave'], kill_grace: 3s, stdio: pipe}}]}
  - name: det
    pipeline: [{exec: {command: [/bin/sh, -c, '$detach'], kill_grace: 2s, max_instances: 1}}]
  - {name: hold, pipeline: [{exec: {command: [/bin/sh, -c, '$stay'], kill_grace: 3s}}]}
  - {name: holdp, pipeline: [{exec: {command: [/bin/sh, -c, '$stay'], kill_grace: 3s, stdio: pipe}}]}
  - {name: stub, pipeline: [{exec: {command: [/bin/sh, -c, '$stub'], kill_grace: 4s}}]}
  - {name: stubp, pipeline: [{exec: {command: [/bin/sh, -c, '$stub'], kill_grace: 4s, stdio: pipe}}]}
  - {name: esc, pipeline: [{exec: {command: [/bin/sh, -c, '$escape'], kill_grace: 3s}}]}
  - {name: escp, pipeline: [{exec: {command: [/bin/sh, -c, '$escape'], kill_grace: 3s, stdio: pipe}}]}
CONF
start_daemon "$tmp/conf.yaml"

# alive: not gone and not a zombie (this machine's init may not reap orphans)
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
gone() { ! alive "$1"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# read_to_end PORT NAME: the child's output until the connection ends, in $tmp/NAME;
# sets $ms to how long the connection lasted after the child's two lines came
read_to_end() {
	local start
	timeout 20 socat -u TCP4:127.0.0.1:"$1" - >"$tmp/$2" &
	local reader=$!
	started_pids+=("$reader")
	wait_until 5 eval '[ "$(wc -l <"$tmp/'"$2"'")" -ge 2 ]' || fail "$2: no pids from the child"
	start=$(date +%s%N)
	wait "$reader" || fail "$2: the connection did not end within 20 s"
	ms=$(ms_since "$start")
}

# 1. the child exits, leaving `sleep 45 &`: the sleep gets SIGTERM, the session ends now
for r in bg:$p_bg bgp:$p_bgp; do
	name=${r%%:*}
	read_to_end "${r#*:}" "$name"
	[ "$ms" -lt 2500 ] || fail "$name: the session lasted $ms ms after the child left a sleep behind"
	sleeper=$(sed -n 2p "$tmp/$name")
	wait_until 2 gone "$sleeper" || fail "$name: the child's sleep $sleeper outlived it"
	wait_until 5 log_has "route=$name .*end=closed pid=[0-9]* exit=0 run_ms=[0-9.]* left=TERM" ||
		fail "$name: no access line saying what was left got SIGTERM"
done

# 2. a double-forked grandchild, orphaned, fds closed, ignoring SIGTERM: SIGKILL after
# kill_grace (2 s); until then it holds the route's only slot
timeout 20 socat -u TCP4:127.0.0.1:$p_det - >"$tmp/det" &
reader=$!
started_pids+=("$reader")
wait_until 5 eval '[ "$(wc -l <"$tmp/det")" -ge 2 ]' || fail "det: no pids from the child"
start=$(date +%s%N)
grandchild=$(sed -n 2p "$tmp/det")
alive "$grandchild" || fail "det: the grandchild did not start"
wait_until 2 eval '[ "$(awk '"'"'/^PPid/ {print $2}'"'"' /proc/'"$grandchild"'/status)" != "$(sed -n 1p "$tmp/det")" ]' ||
	fail "det: the grandchild was not orphaned"
# the slot is held: the next connection is refused at once
timeout 5 socat -u TCP4:127.0.0.1:$p_det - >/dev/null 2>&1
wait_until 5 log_has "route=det .*end=max_instances" ||
	fail "det: a second connection got the slot of a group still being ended"
wait "$reader" || fail "det: the connection did not end"
wait_until 6 gone "$grandchild" || fail "det: the grandchild ignoring SIGTERM survived kill_grace"
ms=$(ms_since "$start")
[ "$ms" -ge 1800 ] || fail "det: the grandchild was killed after $ms ms, before kill_grace"
wait_until 5 log_has "route=det .*end=closed pid=[0-9]* exit=0 run_ms=[0-9.]* left=KILL" ||
	fail "det: no access line with the SIGKILL of what was left"
# and the slot is free again
timeout 10 socat -u TCP4:127.0.0.1:$p_det - >"$tmp/det2" || fail "det: the slot was not freed"
[ "$(wc -l <"$tmp/det2")" = 2 ] || fail "det: no second child: $(cat "$tmp/det2")"

# 3. the client leaves (a reset) while the child runs: child and grandchild get SIGTERM
for r in hold:$p_hold holdp:$p_holdp; do
	name=${r%%:*}
	timeout 30 python3 - "${r#*:}" "$tmp/$name" <<'PY' || fail "$name: the client failed (rc $?)"
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
got = b""
while got.count(b"\n") < 2:
    b = s.recv(100)
    if not b:
        break
    got += b
open(sys.argv[2], "wb").write(got)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # a reset
PY
	for k in $(cat "$tmp/$name"); do
		wait_until 2 gone "$k" || fail "$name: process $k outlived its client"
	done
	wait_until 5 log_has "route=$name .*end=client gone pid=[0-9]* signal=TERM run_ms=[0-9.]* killed=TERM" ||
		fail "$name: no access line for the client gone"
done

# 4. a grandchild that left the group (setsid) escapes the signals, but holding the
# connection or the child's stdout it does not hold the session open
for r in esc:$p_esc escp:$p_escp; do
	name=${r%%:*}
	read_to_end "${r#*:}" "$name"
	[ "$ms" -lt 2500 ] || fail "$name: a process out of the group held the session $ms ms"
	escaped=$(sed -n 2p "$tmp/$name")
	alive "$escaped" || fail "$name: the escaped process did not run"
	kill "$escaped" # ours to end: the daemon cannot tell it from any other process
done

# 5. SIGTERM while two groups are being ended (grandchildren that ignore SIGTERM, one of
# them holding the child's stdout pipe): the daemon exits after kill_grace (4 s), not
# after the drain (30 s), and nothing is left
kids=
for r in stub:$p_stub stubp:$p_stubp; do
	name=${r%%:*}
	timeout 20 socat -u TCP4:127.0.0.1:"${r#*:}" - >"$tmp/$name" &
	started_pids+=($!)
	wait_until 5 eval '[ "$(wc -l <"$tmp/'"$name"'")" -ge 2 ]' || fail "$name: no pids from the child"
	kids="$kids $(cat "$tmp/$name")"
done
start=$(date +%s%N)
stop_daemon TERM 15
ms=$(ms_since "$start")
[ "$rc" = 0 ] || fail "exit status $rc"
[ "$ms" -lt 9000 ] || fail "the stop took $ms ms with kill_grace 4s"
for k in $kids; do
	wait_until 2 gone "$k" || fail "process $k survived the daemon's stop"
done
grep -qE "route=stubp .*left=KILL" "$log" || fail "stubp: no SIGKILL of what was left"
zombies=$(ps --ppid "$pid" -o stat= 2>/dev/null | grep -c Z)
[ "$zombies" = 0 ] || fail "$zombies zombie children"
echo "PASS: exec_group (what a child leaves is ended: SIGTERM at its exit, SIGKILL after kill_grace while it holds the slot; a client's reset ends the group; SIGTERM stop in $ms ms, nothing left)"
