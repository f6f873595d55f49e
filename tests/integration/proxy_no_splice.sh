#!/bin/bash
# proxy_no_splice.sh - where splice(2) is refused (a seccomp filter: EPERM; ENOSYS as on a
# kernel without it) the daemon says so once and the relay goes on with buffers: a 30 MiB
# download and 30 MiB both ways through the proxy arrive intact, closed cleanly, and no
# pipe is held while a client stalls.
. "$(dirname "$0")/lib.sh"
deny=${BUILDDIR:-.}/tests/tools/deny_syscall
case $(uname -m) in
x86_64) NR_SPLICE=275 ;;
aarch64) NR_SPLICE=76 ;;
*) echo "SKIP: splice's number on $(uname -m) not known here"; exit 77 ;;
esac
EPERM=1 ENOSYS=38
"$deny" $NR_SPLICE $EPERM true || { echo "SKIP: cannot install a seccomp filter here"; exit 77; }

pd=$(free_port) pe=$(free_port) pf=$(free_port) py=$(free_port)
head -c $((30 << 20)) /dev/urandom >"$tmp/big"
want=$(sha256sum <"$tmp/big" | cut -d' ' -f1)
start_backend send $pd "$tmp/big"

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: true}
upstreams:
  - {name: echo, servers: ["127.0.0.1:$pe"]}
  - {name: down, servers: ["127.0.0.1:$pd"]}
listeners:
  - {name: echo, bind: "127.0.0.1:$pe", route: echo}
  - {name: fe, bind: "127.0.0.1:$pf", route: to-echo}
  - {name: fd, bind: "127.0.0.1:$py", route: to-down}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
  - {name: to-echo, pipeline: [{proxy: {upstream: echo}}]}
  - {name: to-down, pipeline: [{proxy: {upstream: down}}]}
CONF

pipes() { find /proc/"$pid"/fd -lname 'pipe:*' 2>/dev/null | wc -l; }
for e in $EPERM $ENOSYS; do
	# the daemon under the filter, with its own PID (exec)
	filter_syscall $NR_SPLICE "$e"
	: >"$log"
	start_daemon "$tmp/conf.yaml"
	before=$(pipes)

	got=$(timeout 60 socat -t 20 -b 262144 -u TCP4:127.0.0.1:$py - | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "errno $e: the 30 MiB download came back different"
	got=$(timeout 60 socat -t 20 -b 262144 - TCP4:127.0.0.1:$pf <"$tmp/big" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "errno $e: 30 MiB through proxy+echo came back different"
	wait_until 30 log_has "route=to-down .* out=31457280 end=closed" || fail "errno $e: the download did not end cleanly"
	if [ "$e" = $EPERM ]; then
		log_wait 30 "proxy: splice(2) is not permitted (a seccomp filter; under systemd add it to SystemCallFilter=): streams are relayed through buffers" ||
			fail "no warning naming the filter"
	else
		log_wait 30 "proxy: splice(2) is not in this kernel: streams are relayed through buffers" ||
			fail "no warning naming the kernel"
	fi
	[ "$(log_count "proxy: splice(2)")" = 1 ] || fail "errno $e: the warning came $(log_count "proxy: splice(2)") times, want once"

	# a stalled download: buffers, no pipe
	python3 - "$py" "$tmp/stalled" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
got = 0
while got < (1 << 20):
    got += len(s.recv(65536))
open(sys.argv[2], "w").close()
time.sleep(1.5)
PY
	slow=$!
	started_pids+=("$slow")
	wait_until 30 test -e "$tmp/stalled" || fail "errno $e: the slow reader got no first MiB"
	[ "$(pipes)" = "$before" ] || fail "errno $e: pipes held while splice is refused: $(pipes), before $before"
	wait "$slow"
	rm -f "$tmp/stalled"

	stop_daemon TERM
	[ "$rc" = 0 ] || fail "errno $e: exit status $rc"
done
echo "PASS: proxy without splice (EPERM and ENOSYS: 30 MiB down and both ways intact by buffers, no pipe)"
