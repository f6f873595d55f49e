#!/bin/bash
# log_target.sh - log.target: auto sends the log to the journal when standard error is
# the journal, which systemd says with JOURNAL_STREAM=DEV:INO of that stream: with it
# set to stderr's own device and inode, every line goes to the journal with its fields
# (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, the access line's LISTENER...) and none to
# stderr; with it naming another file, or unset, lines go to stderr and none to the
# journal. The test runs in a mount namespace of its own, with journal_recv.py standing
# in for journald at /run/systemd/journal/socket.
if [ -z "${SP_IN_MNTNS:-}" ]; then
	unshare -m --propagation private true 2>/dev/null ||
		{ echo "SKIP: cannot make a mount namespace here"; exit 77; }
	exec unshare -m --propagation private env SP_IN_MNTNS=1 "$0" "$@"
fi
mkdir -p /run/systemd && mount -t tmpfs spargiod-test /run/systemd && mkdir /run/systemd/journal ||
	{ echo "FAIL: no private /run/systemd in the mount namespace"; exit 1; }
. "$(dirname "$0")/lib.sh"

journal=$tmp/journal.txt
python3 "$(dirname "$0")/journal_recv.py" /run/systemd/journal/socket "$journal" 120 &
started_pids+=("$!")
wait_until 30 test -e "$journal.ready" || fail "journal receiver did not start"

port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {target: auto}
listeners:
  - {name: jl, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF

# run_with STREAM-FILE [JOURNAL_STREAM]: the daemon with stderr to STREAM-FILE, one echo,
# a stop; $rc its exit status
run_with() {
	local out=$1
	shift
	env "$@" "$bin" -c "$tmp/conf.yaml" 2>>"$out" &
	pid=$!
	started_pids+=("$pid")
	wait_until 30 echo_ok TCP4:127.0.0.1:$port || fail "no echo (${*:-no JOURNAL_STREAM})"
	stop_daemon TERM
}

# JOURNAL_STREAM names stderr: to the journal
: >"$log"
js=$(stat -c '%d:%i' "$log")
run_with "$log" JOURNAL_STREAM="$js"
[ "$rc" = 0 ] || fail "exit status $rc"
wait_until 30 grep -q "MESSAGE=spargiod .*generation 1" "$journal" || fail "no start line in the journal"
grep "MESSAGE=spargiod .*generation 1" "$journal" | grep -q "PRIORITY=6 | SYSLOG_IDENTIFIER=spargiod" ||
	fail "the start line lacks PRIORITY=6 or SYSLOG_IDENTIFIER: $(grep generation "$journal")"
wait_until 30 grep -q "MESSAGE=access listener=jl .*SPARGIOD_EVENT=access | LISTENER=jl | ROUTE=echo" "$journal" ||
	fail "no structured access line in the journal"
wait_until 30 grep -q "MESSAGE=stopped" "$journal" || fail "no stop line in the journal"
grep -q "spargiod\[" "$log" && fail "lines on stderr while it is the journal: $(head -3 "$log")"

# JOURNAL_STREAM names another file: stderr
lines=$(wc -l <"$journal")
: >"$tmp/other"
run_with "$log" JOURNAL_STREAM="$(stat -c '%d:%i' "$tmp/other")"
[ "$rc" = 0 ] || fail "exit status $rc"
log_has "spargiod\[info\]: spargiod .*generation 1" || fail "JOURNAL_STREAM of another file: no start line on stderr"
log_has "spargiod\[info\]: access listener=jl" || fail "JOURNAL_STREAM of another file: no access line on stderr"

# unset: stderr
: >"$log"
run_with "$log"
[ "$rc" = 0 ] || fail "exit status $rc"
log_has "spargiod\[info\]: spargiod .*generation 1" || fail "no JOURNAL_STREAM: no start line on stderr"
[ "$(wc -l <"$journal")" = "$lines" ] || fail "lines reached the journal when stderr was not it: $(tail -n +$((lines + 1)) "$journal" | head -3)"
echo "PASS: log.target auto (JOURNAL_STREAM of stderr: the journal with fields, stderr silent; another stream or none: stderr)"
