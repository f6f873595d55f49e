# shellcheck shell=bash
# lib.sh - sourced by the daemon's integration tests: a temporary directory, free
# loopback ports, starting and stopping spargiod by PID, and bounded waits.
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

# wait_until SECONDS COMMAND...: poll COMMAND every 50 ms until it succeeds.
wait_until() {
	local limit=$(($1 * 20)) i
	shift
	for ((i = 0; i < limit; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# log_has PATTERN: the daemon logged it. Lines reach the log through the logger's writer
# thread, a moment after what they tell: look again for up to 2 s before saying no.
log_has() {
	local i
	for i in $(seq 20); do
		grep -q -- "$1" "$log" && return 0
		sleep 0.1
	done
	return 1
}
log_count() { grep -c -- "$1" "$log"; }

# start_daemon CONFIG [ENV=VALUE...]: start spargiod in the background; waits for its
# start-up line. Sets $pid.
start_daemon() {
	local conf=$1
	shift
	env "$@" "$bin" -c "$conf" >>"$log" 2>&1 &
	pid=$!
	started_pids+=("$pid")
	wait_until 10 log_has "spargiod .*generation 1" || fail "spargiod did not start"
}

# stop_daemon [SIGNAL] [SECONDS]: signal it and wait; sets $rc to its exit status.
stop_daemon() {
	local sig=${1:-TERM} limit=${2:-10}
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
	wait_until 10 grep -q ready "$tmp/backend.$2" || fail "backend $1 on $2 did not start"
}

# reload_and_wait: SIGHUP, then wait for the verdict line that follows it.
reload_and_wait() {
	local before
	before=$(grep -c -E 'reload: generation|reload rejected' "$log")
	kill -HUP "$pid"
	wait_until 10 eval '[ "$(grep -c -E "reload: generation|reload rejected" "$log")" -gt '"$before"' ]' ||
		fail "no reload verdict in the log"
}
