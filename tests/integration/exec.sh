#!/bin/bash
# exec.sh - the exec handler with real children: 1 MiB echoed through /bin/cat with
# `stdio: socket` and `stdio: pipe` (bytes and exit status in the access log), the
# environment (clean, configured, per connection; systemd's variables never passed), no
# fd leaked into a child, stderr to the log line by line, a child that exits before
# reading, a program that cannot be run, unix listeners.
. "$(dirname "$0")/lib.sh"

p_sock=$(free_port) p_pipe=$(free_port) p_env=$(free_port) p_fds=$(free_port)
p_err=$(free_port) p_early=$(free_port) p_bad=$(free_port) p_envpp=$(free_port)
printf '#!/bin/sh\necho ran\n' >"$tmp/prog"
chmod +x "$tmp/prog"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: sock, bind: "127.0.0.1:$p_sock", route: cat}
  - {name: pipe, bind: "127.0.0.1:$p_pipe", route: pcat}
  - {name: env, bind: "127.0.0.1:$p_env", route: env}
  - {name: envu, bind: "unix:$tmp/env.sock", route: env}
  - {name: envpp, bind: "127.0.0.1:$p_envpp", proxy_protocol: true, route: env}
  - {name: fds, bind: "127.0.0.1:$p_fds", route: fds}
  - {name: err, bind: "127.0.0.1:$p_err", route: err}
  - {name: early, bind: "127.0.0.1:$p_early", route: early}
  - {name: bad, bind: "127.0.0.1:$p_bad", route: bad}
routes:
  - {name: cat, pipeline: [{exec: {command: [/bin/cat]}}]}
  - {name: pcat, placement: stealable, pipeline: [{exec: {command: [/bin/cat], stdio: pipe}}]}
  - name: env
    pipeline:
      - exec:
          command: [/usr/bin/env]
          env: {GREETING: "hello world", PATH: /bin, LISTEN_PID: "1", REMOTE_ADDR: forged}
  - {name: fds, pipeline: [{exec: {command: [/bin/ls, -1, /proc/self/fd]}}]}
  - name: err
    pipeline:
      - exec: {command: [/bin/sh, -c, 'echo out; printf "line one\nbell\007two\n" >&2; printf partial >&2']}
  - {name: early, pipeline: [{exec: {command: [/bin/sh, -c, 'echo bye'], stdio: pipe}}]}
  - {name: bad, pipeline: [{exec: {command: [$tmp/prog]}}]}
CONF
start_daemon "$tmp/conf.yaml" NOTIFY_SOCKET="$tmp/no-such-notify" SECRET_OF_DAEMON=x

# 1 MiB both ways, through the connection itself and through the relay
head -c 1048576 /dev/urandom >"$tmp/in"
for p in $p_sock $p_pipe; do
	timeout 20 socat -t 10 - TCP4:127.0.0.1:$p <"$tmp/in" >"$tmp/out.$p" ||
		fail "socat to port $p failed"
	cmp -s "$tmp/in" "$tmp/out.$p" || fail "1 MiB through port $p came back different ($(stat -c %s "$tmp/out.$p") bytes)"
done
wait_until 30 log_has "route=pcat .*in=1048576 out=1048576 end=closed pid=[0-9]* exit=0 run_ms=" ||
	fail "no access line with the relay's bytes and the exit status"
wait_until 30 log_has "route=cat .*in=1048576 out=1048576 end=closed pid=[0-9]* exit=0" ||
	fail "no access line with the socket's bytes (TCP_INFO) and the exit status"

# the environment: clean, then configured, then per connection
out=$(timeout 5 socat -t 3 - TCP4:127.0.0.1:$p_env,bind=127.0.0.1:0 </dev/null)
for want in "GREETING=hello world" "PATH=/bin" "REMOTE_ADDR=127.0.0.1" "LOCAL_ADDR=127.0.0.1" \
	"LOCAL_PORT=$p_env" SPARGIOD_ROUTE=env SPARGIOD_LISTENER=env; do
	grep -qx -- "$want" <<<"$out" || fail "child environment lacks '$want': $out"
done
grep -qE '^REMOTE_PORT=[0-9]+$' <<<"$out" || fail "no REMOTE_PORT: $out"
grep -qE 'NOTIFY_SOCKET|LISTEN_|WATCHDOG_|SECRET_OF_DAEMON|forged' <<<"$out" &&
	fail "the child saw what it must not: $out"
[ "$(wc -l <<<"$out")" = 8 ] || fail "unexpected variables in the child: $out"
log_wait 30 "env LISTEN_PID is not passed" || fail "no warning for the reserved LISTEN_PID"
log_wait 30 "env REMOTE_ADDR is not passed" || fail "no warning for the per-connection REMOTE_ADDR"
# behind a PROXY header: REMOTE_* is the header's source, LOCAL_* its destination (the
# address the client reached), not the proxy's connection to us
out=$(printf 'PROXY TCP4 192.0.2.1 198.51.100.7 4321 8443\r\n' |
	timeout 5 socat -t 3 - TCP4:127.0.0.1:$p_envpp)
for want in REMOTE_ADDR=192.0.2.1 REMOTE_PORT=4321 LOCAL_ADDR=198.51.100.7 LOCAL_PORT=8443 \
	SPARGIOD_LISTENER=envpp; do
	grep -qx -- "$want" <<<"$out" || fail "PROXY header: child environment lacks '$want': $out"
done
out=$(timeout 5 socat -t 3 - UNIX-CONNECT:"$tmp/env.sock" </dev/null)
grep -qx SPARGIOD_LISTENER=envu <<<"$out" || fail "unix listener: $out"
grep -q REMOTE_ <<<"$out" && fail "a unix socket client has no address: $out"

# nothing of the daemon's leaks into the child: 0-2 and the fd ls reads /proc with
out=$(timeout 5 socat -t 3 - TCP4:127.0.0.1:$p_fds </dev/null | tr '\n' ' ')
[ "$out" = "0 1 2 3 " ] || fail "the child has fds '$out', not '0 1 2 3 '"

# stderr goes to the log, line by line, with the route and the pid; control characters
# are not passed through
out=$(timeout 5 socat -t 3 - TCP4:127.0.0.1:$p_err </dev/null)
[ "$out" = out ] || fail "stdout of the err route: '$out'"
wait_until 30 log_has "exec route=err pid=[0-9]* stderr: partial" || fail "no partial last stderr line"
log_wait 30 "exec route=err pid=[0-9]* stderr: line one" || fail "no first stderr line"
log_wait 30 "stderr: bell?two" || fail "a control character reached the log"

# a child that exits without reading what the client still sends
out=$( (echo first; sleep 0.5; head -c 300000 /dev/zero) | timeout 10 socat -t 3 - TCP4:127.0.0.1:$p_early 2>/dev/null)
[ "$out" = bye ] || fail "early-exit child: '$out'"
wait_until 30 log_has "route=early .*pid=[0-9]* exit=0" || fail "no access line for the early exit"

# a program that cannot be run any more: the connection closes, the log says why
chmod -x "$tmp/prog"
out=$(echo x | timeout 5 socat -t 3 - TCP4:127.0.0.1:$p_bad 2>/dev/null)
[ -z "$out" ] || fail "a failed spawn answered '$out'"
if grep -q -- '-fsanitize=thread' "${BUILDDIR:-.}/Makefile" 2>/dev/null; then
	# ThreadSanitizer turns vfork into fork: the child's report of its failure is lost
	# (exec_spawn.c); it still exits 127
	wait_until 30 log_has "route=bad .*pid=[0-9]* exit=127" || fail "no exit 127 for the failed exec"
else
	wait_until 30 log_has "exec route bad: cannot start $tmp/prog: execve: Permission denied" ||
		fail "no log line for the failed exec"
	wait_until 30 log_has "route=bad .*end=spawn failed pid=[0-9]* exit=127 .*spawn_error=execve:EACCES" ||
		fail "no access line for the failed exec"
fi

# every child is reaped (the last one's exit is seen a moment after its connection ends)
zombies() { ps --ppid "$pid" -o stat= | grep -c Z; }
wait_until 30 eval '[ "$(zombies)" = 0 ]' || fail "$(zombies) zombie children"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: exec (1 MiB through socket and pipe, env, no fd leak, stderr lines, early exit, failed exec)"
