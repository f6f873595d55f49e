# shellcheck shell=bash
# lib.sh - sourced by the daemon's integration tests: a temporary directory, free
# loopback ports, starting and stopping spargiod by PID, and bounded waits.
#
# Waits are in seconds of wall-clock time: `wait_until SECONDS COMMAND...` polls COMMAND
# until it succeeds, no longer than SECONDS (the command itself must be bounded: a
# `timeout` on a client). `log_has PATTERN` is one look at the daemon's log, right now;
# a line that may still be on its way (the logger's thread writes it a moment after what
# it tells) is waited for with `log_wait SECONDS PATTERN` (= wait_until SECONDS log_has
# PATTERN). A line that must not come: `! log_wait SECONDS PATTERN` once the daemon has
# had time to write it, or `! log_has PATTERN` after stop_daemon (the log is whole then).
# A wait for what should happen at once is bounded by 30 s: room for a loaded 2-core
# machine running a sanitizer build; a passing test never waits that long.
#
# Skips say why and are held to tests/skips-allowed by tests/run-test: `skip REASON`
# skips the whole test (exit 77); `skip_part REASON` reports a part not checked here and
# goes on. Every test runs under a time limit (tests/run-test).
set -u
bin=${BUILDDIR:-.}/spargiod
real_bin=$bin # spargiod itself, whatever $bin is made to run
load=${BUILDDIR:-.}/tests/tools/echo_load
tmp=$(mktemp -d /tmp/spargiod-test.XXXXXX)
log=$tmp/log
pid=
started_pids=()

cleanup() {
	local p
	for p in "${started_pids[@]}"; do
		kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
# the time limit's SIGTERM (tests/run-test): say so, show the log, clean up
trap 'trap "" TERM; fail "terminated by SIGTERM (the time limit?)"' TERM

fail() {
	echo "FAIL: $*"
	[ -f "$log" ] && { echo "---- daemon log (last 60 lines)"; tail -60 "$log"; }
	exit 1
}

# A loopback TCP port nobody listens on now.
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 22000)) # below the ephemeral range (32768+)
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# skip REASON: skip the whole test (an allowed condition of this machine, see above).
skip() {
	echo "SKIP: $*"
	exit 77
}
# skip_part REASON: a part of the test does not run here; the rest goes on.
skip_part() { echo "SKIP: $*"; }

# sp_now_us: wall-clock time in microseconds, into $now_us (no subshell)
sp_now_us() { now_us=${EPOCHREALTIME//[!0-9]/}; }

# wait_until SECONDS COMMAND...: run COMMAND every 50 ms until it succeeds; fails once
# SECONDS (whole or decimal, e.g. 0.5) of wall-clock time have passed with no success. The
# last try starts before the limit, so COMMAND's own bound adds to it.
wait_until() {
	local s=$1 whole frac end now_us
	shift
	whole=${s%%.*}
	frac=
	[[ $s == *.* ]] && frac=${s#*.}
	frac=${frac}000000
	sp_now_us
	end=$((now_us + ${whole:-0} * 1000000 + 10#${frac:0:6}))
	while :; do
		"$@" && return 0
		sp_now_us
		[ "$now_us" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# log_has PATTERN: the daemon's log has a line matching PATTERN (grep), now.
log_has() { grep -q -- "$1" "$log"; }
# log_wait SECONDS PATTERN: wait up to SECONDS for such a line.
log_wait() { wait_until "$1" log_has "$2"; }
log_count() { grep -c -- "$1" "$log"; }

# start_daemon CONFIG [ENV=VALUE...]: start spargiod in the background; waits for its
# start-up line. Sets $pid.
start_daemon() {
	local conf=$1
	shift
	env "$@" "$bin" -c "$conf" >>"$log" 2>&1 &
	pid=$!
	started_pids+=("$pid")
	# 30 s: a loaded machine running a sanitizer build; a daemon that exits fails at once
	wait_until 30 eval 'log_has "spargiod .*generation 1" || ! kill -0 '"$pid"' 2>/dev/null' &&
		log_has "spargiod .*generation 1" || fail "spargiod did not start"
}

# stop_daemon [SIGNAL] [SECONDS]: signal it and wait (30 s unless told); sets $rc to its
# exit status.
stop_daemon() {
	local sig=${1:-TERM} limit=${2:-30}
	kill -"$sig" "$pid" 2>/dev/null
	wait_until "$limit" eval '! kill -0 '"$pid"' 2>/dev/null || [ "$(ps -o stat= -p '"$pid"')" = Z ]' ||
		fail "spargiod still running $limit s after SIG$sig"
	rc=0
	wait "$pid" || rc=$?
}

# drop_pages FILE: its pages out of the page cache (written back first, so that they go)
drop_pages() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
}

# filter_syscall NR ERRNO: from now on start_daemon runs spargiod with system call NR
# failing with ERRNO (tests/tools/deny_syscall, exec'ed: $pid stays the daemon's).
filter_syscall() {
	printf '#!/bin/sh\nexec "%s" %s %s "%s" "$@"\n' \
		"${BUILDDIR:-.}/tests/tools/deny_syscall" "$1" "$2" "$real_bin" >"$tmp/filtered"
	chmod +x "$tmp/filtered"
	bin=$tmp/filtered
}

# echo_ok ADDR: one line goes through the echo route at ADDR (socat address syntax).
echo_ok() {
	local want="ping $RANDOM" got
	got=$(echo "$want" | timeout 5 socat -t 3 - "$1" 2>/dev/null)
	[ "$got" = "$want" ]
}

# start_backend MODE PORT [ARG...]: a proxy_backend.py server (see there for the modes),
# started and tracked by PID (also in $backend_pid); its output in $tmp/backend.PORT.
backend=$(dirname "${BASH_SOURCE[0]}")/proxy_backend.py
start_backend() {
	python3 "$backend" "$@" >"$tmp/backend.$2" 2>&1 &
	backend_pid=$!
	started_pids+=("$backend_pid")
	wait_until 30 grep -q ready "$tmp/backend.$2" || fail "backend $1 on $2 did not start"
}

# reload_and_wait: SIGHUP, then wait for the verdict line that follows it.
reload_and_wait() {
	local before
	before=$(grep -c -E 'reload: generation|reload rejected' "$log")
	kill -HUP "$pid"
	wait_until 30 eval '[ "$(grep -c -E "reload: generation|reload rejected" "$log")" -gt '"$before"' ]' ||
		fail "no reload verdict in the log"
}
