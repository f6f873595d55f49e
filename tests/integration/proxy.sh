#!/bin/bash
# proxy.sh - the proxy handler's relay with real backends: 100 MiB through an echo server
# both ways at once and 100 MiB each way alone, checked by sha256; half close (the client's
# FIN reaches the server, whose answer still comes back); a server reset reaches the client
# as a reset; a slow reader of a spliced download; idle_timeout; a unix-socket upstream;
# access log fields; many clients at once; a download across a reload and the stop's drain.
. "$(dirname "$0")/lib.sh"

pe=$(free_port); pf=$(free_port); ph=$(free_port); pd=$(free_port); pr=$(free_port)
px=$(free_port); py=$(free_port); pz=$(free_port); pu=$(free_port); pw=$(free_port)
pk=$(free_port); pj=$(free_port)
head -c $((100 << 20)) /dev/urandom >"$tmp/big"
want=$(sha256sum <"$tmp/big" | cut -d' ' -f1)

start_backend hash $ph
start_backend send $pd "$tmp/big"
start_backend reset $pr
start_backend sendreset $pk "$tmp/big"

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: true}
upstreams:
  - {name: echo, servers: ["127.0.0.1:$pe"]}
  - {name: hash, servers: ["127.0.0.1:$ph"]}
  - {name: down, servers: ["127.0.0.1:$pd"]}
  - {name: reset, servers: ["127.0.0.1:$pr"]}
  - {name: sendreset, servers: ["127.0.0.1:$pk"]}
  - {name: local, servers: ["unix:$tmp/echo.sock"]}
listeners:
  - {name: echo-a, bind: "127.0.0.1:$pe", route: echo}
  - {name: echo-u, bind: "unix:$tmp/echo.sock", route: echo}
  - {name: fe, bind: "127.0.0.1:$pf", route: to-echo}
  - {name: fh, bind: "127.0.0.1:$px", route: to-hash}
  - {name: fd, bind: "127.0.0.1:$py", route: to-down}
  - {name: fr, bind: "127.0.0.1:$pz", route: to-reset}
  - {name: fk, bind: "127.0.0.1:$pj", route: to-sendreset}
  - {name: fu, bind: "127.0.0.1:$pu", route: to-local}
  - {name: fi, bind: "127.0.0.1:$pw", route: idle}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
  - {name: to-echo, placement: round_robin, pipeline: [{proxy: {upstream: echo}}]}
  - {name: to-hash, pipeline: [{proxy: {upstream: hash}}]}
  - {name: to-down, placement: sticky, pipeline: [{proxy: {upstream: down}}]}
  - {name: to-reset, pipeline: [{proxy: {upstream: reset}}]}
  - {name: to-sendreset, pipeline: [{proxy: {upstream: sendreset}}]}
  - {name: to-local, placement: pinned, pipeline: [{proxy: {upstream: local}}]}
  - {name: idle, pipeline: [{proxy: {upstream: echo, idle_timeout: 2s}}]}
CONF
start_daemon "$tmp/conf.yaml"

# 100 MiB up and back down at the same time through proxy -> echo
got=$(timeout 60 socat -t 20 -b 262144 - TCP4:127.0.0.1:$pf <"$tmp/big" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "100 MiB through proxy+echo came back different"
wait_until 30 log_has "access listener=fe route=to-echo .* in=104857600 out=104857600 end=closed upstream=echo server=127.0.0.1:$pe connect_ms=[0-9.]* tries=1" ||
	fail "no access log line with the 100 MiB and the server fields"

# 100 MiB up, then half close: the server hashes to EOF and answers on the open half
got=$(timeout 60 socat -t 30 -b 262144 - TCP4:127.0.0.1:$px <"$tmp/big")
[ "$got" = "$want" ] || fail "half close: server saw '$got', want $want"

# 100 MiB down from a server that sends and closes
got=$(timeout 60 socat -t 20 -b 262144 -u TCP4:127.0.0.1:$py - | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "100 MiB download came back different"

# a slow reader: the download streams by splice through one pipe (2 fds) of the shard's
# pool, which bounds what the daemon holds while the client stalls; every byte arrives,
# and the pipe is gone once the relay ends
pipes() { find /proc/"$pid"/fd -lname 'pipe:*' 2>/dev/null | wc -l; }
before=$(pipes)
python3 - "$py" "$tmp/slow" <<'PY' &
import hashlib, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
h, got = hashlib.sha256(), 0
while got < (1 << 20):
    b = s.recv(65536)
    h.update(b)
    got += len(b)
open(sys.argv[2] + ".stalled", "w").close()
time.sleep(2)
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    h.update(b)
open(sys.argv[2], "w").write(h.hexdigest())
PY
slow=$!
started_pids+=("$slow")
wait_until 30 test -e "$tmp/slow.stalled" || fail "the slow reader got no first MiB"
sleep 0.5
during=$(pipes)
[ "$during" = $((before + 2)) ] || fail "a stalled download holds $((during - before)) pipe fds, want 2"
wait "$slow" || fail "the slow reader failed"
[ "$(cat "$tmp/slow")" = "$want" ] || fail "the slow reader's 100 MiB came back different"
wait_until 30 eval '[ "$(pipes)" = "$before" ]' || fail "pipes left after the download: $(pipes), before $before"

# a server reset reaches the client as a reset
out=$(python3 - "$pz" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hello\n")
try:
    print("eof" if s.recv(100) == b"" else "data")
except ConnectionResetError:
    print("reset")
PY
)
[ "$out" = reset ] || fail "server reset reached the client as '$out'"
wait_until 30 log_has "route=to-reset .* end=server reset" || fail "no 'server reset' access line"

# a reset at the end of a 100 MiB stream (spliced: the relay is still passing it on)
# reaches the client as a reset, never as a clean end of stream
out=$(python3 - "$pj" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
got = 0
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            print("eof after", got)
            break
        got += len(b)
except ConnectionResetError:
    print("reset")
PY
)
[ "$out" = reset ] || fail "a server reset mid-stream reached the client as '$out'"
wait_until 30 log_has "route=to-sendreset .* end=server reset" || fail "no 'server reset' line for the stream"

# unix-socket upstream, pinned placement
echo_ok TCP4:127.0.0.1:$pu || fail "proxy to a unix-socket upstream"

# many clients at once, each checked
out=$("$load" --connect 127.0.0.1:$pf --conns 600 --concurrency 50 --size 3000 --max-seconds 60) ||
	fail "load through the proxy: $out"

# idle_timeout: a silent client is closed after 2 s, an active one is not
start=$(date +%s%N)
out=$(python3 - "$pw" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    for i in range(8):  # 2.4 s of activity, more than the timeout, in 0.3 s gaps
        s.sendall(b"x")
        assert s.recv(1) == b"x", "closed while active"
        time.sleep(0.3)
    print("eof" if s.recv(1) == b"" else "data")
except Exception as e:
    print(repr(e))
PY
)
ms=$((($(date +%s%N) - start) / 1000000))
[ "$out" = eof ] || fail "idle client: $out"
# the last byte moved at 2.1 s: the close comes 2 s later, not during the activity
[ "$ms" -ge 3900 ] || fail "idle connection closed after $ms ms, before 2.1 s of activity + 2 s idle"
wait_until 30 log_has "route=idle .* end=idle timeout" || fail "no 'idle timeout' access line"

# a spliced download in flight across a reload and then the drain of the stop: intact
python3 - "$py" "$tmp/through" <<'PY' &
import hashlib, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
h, got, marked = hashlib.sha256(), 0, False
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    h.update(b)
    got += len(b)
    if got >= (1 << 20) and not marked:
        open(sys.argv[2] + ".started", "w").close()
        marked = True
    if got % (8 << 20) < len(b):
        time.sleep(0.1)  # a reader slower than the sender: the relay keeps waiting
open(sys.argv[2], "w").write(h.hexdigest())
PY
through=$!
started_pids+=("$through")
wait_until 30 test -e "$tmp/through.started" || fail "the download across the reload did not start"
kill -HUP "$pid"
wait_until 30 log_has "reload: generation 2" || fail "no reload"
stop_daemon TERM 30
log_wait 30 "stopping; draining 1 connections" || fail "the download was not in flight at the stop"
wait "$through" || fail "the reader across the reload and the stop failed"
[ "$(cat "$tmp/through")" = "$want" ] || fail "the download across a reload and the drain came back different"
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: proxy relay (100 MiB both ways, half close, download, slow reader by splice, reset, unix upstream, load, idle timeout, a download across a reload and the drain)"
