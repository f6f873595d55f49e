#!/bin/bash
# files_no_cachestat.sh - where cachestat(2) fails (a seccomp filter older than the call,
# as systemd 252's @system-service; or a kernel before 6.5, simulated with ENOSYS) the
# files handler says so once, with the remedy, and checks the page cache with mincore(2)
# on a mapping instead: a cached body of a file the daemon owns still goes by sendfile
# (one read-type system call per request in /proc/PID/io: splice through io_uring counts
# none), and every body is served byte for byte; `spargiod -V` tells the same.
. "$(dirname "$0")/lib.sh"

deny=${BUILDDIR:-.}/tests/tools/deny_syscall
NR_CACHESTAT=451 EPERM=1 ENOSYS=38

"$deny" $NR_CACHESTAT $EPERM true || { echo "SKIP: cannot install a seccomp filter here"; exit 77; }
"$deny" $NR_CACHESTAT $EPERM "$real_bin" -V | grep -qx "cachestat: no (not permitted by a seccomp filter; files: mincore instead)" ||
	fail "-V under the filter: $("$deny" $NR_CACHESTAT $EPERM "$real_bin" -V | grep cachestat)"
"$deny" $NR_CACHESTAT $ENOSYS "$real_bin" -V | grep -qx "cachestat: no (not in this kernel; files: mincore instead)" ||
	fail "-V with ENOSYS: $("$deny" $NR_CACHESTAT $ENOSYS "$real_bin" -V | grep cachestat)"

www=$tmp/www
mkdir -p "$www"
head -c 49000 /dev/urandom >"$www/sf.bin"   # 32..64 KiB: sendfile when it may
head -c 1048576 /dev/urandom >"$www/1m.bin"
head -c $((3 * 1024 * 1024 + 5)) /dev/urandom >"$www/3m.bin"
cat "$www"/* >/dev/null # in the page cache: sendfile's case, were cachestat there
port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: web, bind: "127.0.0.1:$port", route: static}
routes:
  - {name: static, pipeline: [{files: {root: "$www"}}]}
CONF

for e in $EPERM $ENOSYS; do
	# the daemon under the filter, with its own PID (exec)
	filter_syscall $NR_CACHESTAT "$e"
	: >"$log"
	start_daemon "$tmp/conf.yaml"
	if [ "$e" = $EPERM ]; then
		log_wait 30 "files: cachestat(2) is not permitted (a seccomp filter; under systemd add it to SystemCallFilter=)" ||
			fail "no warning naming the filter"
	else
		log_wait 30 "files: cachestat(2) is not in this kernel" || fail "no warning naming the kernel"
	fi
	for f in sf.bin 1m.bin 3m.bin; do
		for i in 1 2 3; do
			got=$(curl -sf --max-time 20 "http://127.0.0.1:$port/$f" | sha256sum | cut -d' ' -f1)
			[ "$got" = "$(sha256sum <"$www/$f" | cut -d' ' -f1)" ] || fail "$f differs (errno $e)"
		done
	done
	# sendfile, known by its read-type system call (syscr); the body cached just now
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$port/1m.bin" || fail "warm-up"
	r0=$(awk '/^syscr/ { print $2 }' /proc/"$pid"/io)
	for i in $(seq 10); do
		curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$port/1m.bin" || fail "1m.bin"
	done
	r1=$(awk '/^syscr/ { print $2 }' /proc/"$pid"/io)
	[ $((r1 - r0)) -ge 10 ] || fail "10 cached 1 MiB bodies made $((r1 - r0)) sendfile calls (errno $e)"
	# pages out of the cache: mincore says so, and the body goes by splice (no read call)
	drop_pages "$www/3m.bin"
	r0=$(awk '/^syscr/ { print $2 }' /proc/"$pid"/io)
	got=$(curl -sf --max-time 20 "http://127.0.0.1:$port/3m.bin" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$(sha256sum <"$www/3m.bin" | cut -d' ' -f1)" ] || fail "uncached 3m.bin differs"
	r1=$(awk '/^syscr/ { print $2 }' /proc/"$pid"/io)
	[ $((r1 - r0)) = 0 ] || fail "an uncached body went by sendfile (errno $e)"
	reload_and_wait
	log_wait 30 "reload: generation 2" || fail "reload rejected"
	[ "$(log_count "cachestat(2)")" = 1 ] || fail "the warning was said $(log_count "cachestat(2)") times"
	stop_daemon TERM
	[ "$rc" = 0 ] || fail "exit status $rc"
done
echo "PASS: files without cachestat (seccomp EPERM and ENOSYS: said once with the remedy, -V, sendfile kept through mincore, 49 KiB / 1 MiB / 3 MiB served intact)"
