#!/bin/bash
# notify.sh - the systemd notify protocol, with this test standing in for systemd:
# READY=1 after start; RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload, a
# rejected one too (with its error in STATUS=); WATCHDOG=1 while the shards answer;
# STOPPING=1 on SIGTERM. Logging goes to journald when asked, and the test reads it back
# when journald runs here.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: a, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
msgs=$tmp/notify.txt
python3 "$(dirname "$0")/notify_recv.py" "$tmp/notify.sock" "$msgs" 60 &
started_pids+=("$!")
wait_until 30 test -e "$msgs.ready" || fail "notify receiver did not start"

start_daemon "$tmp/conf.yaml" NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=400000
wait_until 30 grep -qx "READY=1" "$msgs" || fail "no READY=1"
wait_until 30 grep -q "^STATUS=generation 1, 0 connections, 1 listeners, 2 shards" "$msgs" || fail "no STATUS= line"
wait_until 30 eval '[ "$(grep -cx WATCHDOG=1 "$msgs")" -ge 2 ]' || fail "no WATCHDOG=1 pings"
echo_ok TCP4:127.0.0.1:$port || fail "echo"

reload_and_wait
wait_until 30 eval '[ "$(grep -cx READY=1 "$msgs")" -ge 2 ]' || fail "no READY=1 after the reload"
grep -qE "^RELOADING=1 \| MONOTONIC_USEC=[0-9]+$" "$msgs" || fail "no RELOADING=1 with MONOTONIC_USEC"
# RELOADING must come before the second READY
awk '/^RELOADING=1/{r=NR} /^READY=1$/{n++; if (n==2) s=NR} END{exit !(r && s && r < s)}' "$msgs" ||
	fail "RELOADING=1 not before the second READY=1"

echo "version: 1
listeners: [{name: a, bind: \"127.0.0.1:$port\", route: nowhere}]
routes: []" >"$tmp/conf.yaml"
reload_and_wait
wait_until 30 eval '[ "$(grep -cx READY=1 "$msgs")" -ge 3 ]' || fail "no READY=1 after a rejected reload"
grep -q "^STATUS=reload rejected, generation 2 keeps serving: $tmp/conf.yaml:[0-9]*:[0-9]*: " "$msgs" ||
	fail "no STATUS= with the rejection"
echo_ok TCP4:127.0.0.1:$port || fail "echo after the rejected reload"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
wait_until 30 grep -qx "STOPPING=1" "$msgs" || fail "no STOPPING=1"

# log.target: journal - lines reach journald with our identifier and the access line's
# fields: read back with journalctl where journald runs; elsewhere from a stand-in
# (journal_recv.py) on /run/systemd/journal/socket in a mount namespace of the test's own,
# the daemon run in it with nsenter.
tag="notify-test-$RANDOM$RANDOM"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 1}
log: {target: journal}
listeners:
  - {name: $tag, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
if [ -S /run/systemd/journal/socket ] && command -v journalctl >/dev/null &&
	journalctl -n 0 >/dev/null 2>&1; then
	"$bin" -c "$tmp/conf.yaml" 2>>"$log" &
	pid=$!
	started_pids+=("$pid")
	wait_until 30 echo_ok TCP4:127.0.0.1:$port || fail "journal run: no echo"
	stop_daemon TERM
	wait_until 30 eval "journalctl -q SYSLOG_IDENTIFIER=spargiod LISTENER=$tag | grep -q 'access listener=$tag '" ||
		fail "no structured access line in the journal"
	journal="journald checked"
elif command -v nsenter >/dev/null && unshare -m true 2>/dev/null; then
	jr=$tmp/journal.txt
	unshare -m sh -c 'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/systemd/journal &&
		exec python3 "$0" /run/systemd/journal/socket "$1" 60' \
		"$(dirname "$0")/journal_recv.py" "$jr" &
	started_pids+=("$!")
	wait_until 30 test -e "$jr.ready" || fail "the stand-in journald did not start"
	nsenter -m -t "$!" "$bin" -c "$tmp/conf.yaml" 2>>"$log" &
	pid=$!
	started_pids+=("$pid")
	wait_until 30 echo_ok TCP4:127.0.0.1:$port || fail "journal run: no echo"
	stop_daemon TERM
	[ "$rc" = 0 ] || fail "journal run: exit status $rc"
	entry() { grep "MESSAGE=access listener=$tag route=echo client=127.0.0.1:" "$jr" | grep "SYSLOG_IDENTIFIER=spargiod" |
		grep "SPARGIOD_EVENT=access" | grep "LISTENER=$tag |" | grep "ROUTE=echo |" | grep -q "BYTES_IN=[0-9]"; }
	wait_until 30 entry || fail "no structured access entry reached the stand-in journald: $(tail -3 "$jr")"
	grep -q "MESSAGE=.*generation 1" "$jr" || fail "the start-up line did not go to the journal"
	journal="journal entries checked on a stand-in journald"
else
	skip_part "log.target journal: journald does not run here, the journal is not read back"
	journal="journald not checked"
fi
echo "PASS: notify (READY, RELOADING+MONOTONIC_USEC, READY after rejection, STATUS, WATCHDOG, STOPPING; $journal)"
