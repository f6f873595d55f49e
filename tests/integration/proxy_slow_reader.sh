#!/bin/bash
# proxy_slow_reader.sh - the relay's idle clock counts bytes sent as well as bytes
# received: with idle_timeout 1s, a client with a small receive buffer that reads a 512 KiB
# download at about 160 KB/s (over ~3 s) gets every byte. The proxy receives the
# backend's bytes in pipefuls (256 KiB) and sends them on as the client reads, so more
# than 1 s may pass between two receives while bytes flow all along.
. "$(dirname "$0")/lib.sh"

pd=$(free_port) pp=$(free_port)
head -c $((512 << 10)) /dev/urandom >"$tmp/body"
start_backend send "$pd" "$tmp/body"

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: true}
upstreams:
  - {name: down, servers: ["127.0.0.1:$pd"]}
listeners:
  - {name: fe, bind: "127.0.0.1:$pp", route: slow}
routes:
  - {name: slow, pipeline: [{proxy: {upstream: down, idle_timeout: 1s}}]}
CONF
start_daemon "$tmp/conf.yaml"

out=$(timeout 30 python3 - "$pp" "$tmp/body" <<'PY'
import hashlib, socket, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.settimeout(10)
s.connect(("127.0.0.1", port))
got, t0 = [], time.monotonic()
while True:
    b = s.recv(16384)
    if not b:
        break
    got.append(b)
    time.sleep(0.1)  # ~160 KB/s
data = b"".join(got)
want = open(path, "rb").read()
print("%d of %d bytes in %.1f s, %s" % (len(data), len(want), time.monotonic() - t0,
      "intact" if hashlib.sha256(data).digest() == hashlib.sha256(want).digest() else "DIFFERENT"))
PY
) || fail "slow client: $out"
echo "slow client: $out"
case $out in
"$((512 << 10)) of $((512 << 10)) bytes in "*", intact") ;;
*) fail "the slow reader lost bytes: $out ($(grep -c 'idle timeout' "$log") idle timeouts in the log)" ;;
esac
# the run must have been slow enough for the check to mean something: over 2 idle timeouts
secs=${out#* bytes in }
secs=${secs%% s,*}
awk -v s="$secs" 'BEGIN {exit !(s >= 2.0)}' || fail "the client read it all in $secs s: too fast to test"
! log_has "idle timeout" || fail "an idle timeout while bytes flowed"

echo "PASS: proxy slow reader (512 KiB read over ${secs} s through idle_timeout 1s, intact)"
