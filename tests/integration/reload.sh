#!/bin/bash
# reload.sh - SIGHUP adds, changes and removes listeners and routes; a connection open
# across a reload keeps its generation; a broken config is rejected with its position
# and the old one keeps serving; 100 reloads later the daemon stops with status 0 (under
# the sanitizer build LeakSanitizer checks the start/reload/stop path here).
. "$(dirname "$0")/lib.sh"

pa=$(free_port); pb=$(free_port); pc=$(free_port)
conf=$tmp/conf.yaml
cat >"$conf" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {access_log: true}
listeners:
  - {name: a, bind: "127.0.0.1:$pa", route: open}
  - {name: b, bind: "127.0.0.1:$pb", route: open}
routes:
  - {name: open, pipeline: [{echo: {}}]}
CONF
start_daemon "$conf"
echo_ok TCP4:127.0.0.1:$pa || fail "a before reload"
echo_ok TCP4:127.0.0.1:$pb || fail "b before reload"

# a long connection that lives across the reloads below
coproc LONG { socat - TCP4:127.0.0.1:$pa; }
echo first >&"${LONG[1]}"
read -r -t 5 line <&"${LONG[0]}" && [ "$line" = first ] || fail "long connection: no echo"

# add c, route b through a closed acl (change), remove nothing
cat >"$conf" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {access_log: true}
listeners:
  - {name: a, bind: "127.0.0.1:$pa", route: open}
  - {name: b, bind: "127.0.0.1:$pb", route: closed}
  - {name: c, bind: "127.0.0.1:$pc", route: open}
routes:
  - {name: open, pipeline: [{echo: {}}]}
  - {name: closed, pipeline: [{acl: {deny: ["0.0.0.0/0"]}}, {echo: {}}]}
CONF
reload_and_wait
log_wait 30 "reload: generation 2 running" || fail "reload 1 not applied"
echo_ok TCP4:127.0.0.1:$pc || fail "added listener c does not answer"
echo_ok TCP4:127.0.0.1:$pb && fail "changed route of b still echoes"
# refused by the new route's acl, not for any other reason
wait_until 30 log_has "access listener=b route=closed client=127.0.0.1:[0-9]* end=denied stage=acl" ||
	fail "b's new route did not deny by its acl"
echo_ok TCP4:127.0.0.1:$pa || fail "unchanged a stopped answering"

# remove b
cat >"$conf" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {access_log: true}
listeners:
  - {name: a, bind: "127.0.0.1:$pa", route: open}
  - {name: c, bind: "127.0.0.1:$pc", route: open}
routes:
  - {name: open, pipeline: [{echo: {}}]}
CONF
reload_and_wait
log_wait 30 "reload: generation 3 running" || fail "reload 2 not applied"
wait_until 30 eval "! (exec 3<>/dev/tcp/127.0.0.1/$pb) 2>/dev/null" || fail "removed listener b still accepts"
echo_ok TCP4:127.0.0.1:$pc || fail "c after removing b"

# a broken config: rejected with its position, the old one keeps serving
cp "$conf" "$tmp/good.yaml"
cat >>"$conf" <<CONF
  - {name: bad, pipeline: [{echo: {}}, {acl: {allow: ["300.1.2.3/8"]}}]}
CONF
reload_and_wait
log_wait 30 "reload rejected; generation 3 keeps serving" || fail "broken config not rejected"
grep -qE "$conf:[0-9]+:[0-9]+: " "$log" || fail "rejection without FILE:LINE:COL"
echo_ok TCP4:127.0.0.1:$pa || fail "a after a rejected reload"
echo_ok TCP4:127.0.0.1:$pc || fail "c after a rejected reload"
# a bind that fails (port taken by another socket) is rejected too, nothing changes
cp "$tmp/good.yaml" "$conf"
python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1); time.sleep(3)' "$pb" &
holder=$!
started_pids+=("$holder")
wait_until 30 eval "(exec 3<>/dev/tcp/127.0.0.1/$pb) 2>/dev/null" || fail "helper socket did not listen"
cat >>"$conf" <<CONF
  - {name: taken, pipeline: [{echo: {}}]}
CONF
sed -i "s|^routes:|  - {name: b2, bind: \"127.0.0.1:$pb\", route: taken}\nroutes:|" "$conf"
reload_and_wait
log_wait 30 "listener 'b2': cannot bind 127.0.0.1:$pb" || fail "a bind failure was not reported"
echo_ok TCP4:127.0.0.1:$pa || fail "a after a failed bind"
kill "$holder" 2>/dev/null

# the long connection still works, on its old generation
echo second >&"${LONG[1]}"
read -r -t 5 line <&"${LONG[0]}" && [ "$line" = second ] || fail "long connection broke across reloads"
exec {LONG[1]}>&-
wait "${LONG_PID:-}" 2>/dev/null # bash unsets it when the coprocess ends

cp "$tmp/good.yaml" "$conf"
for _ in $(seq 100); do reload_and_wait; done
[ "$(log_count "reload: generation")" -ge 102 ] || fail "100 reloads did not all apply ($(log_count "reload: generation"))"
echo_ok TCP4:127.0.0.1:$pa || fail "a after 100 reloads"
stop_daemon TERM 20
[ "$rc" = 0 ] || fail "exit status $rc after 100 reloads (leak report?)"
log_has "LeakSanitizer" && fail "LeakSanitizer report"
echo "PASS: reload (add, change, remove, broken config, failed bind, long connection, 100 reloads, clean stop)"
