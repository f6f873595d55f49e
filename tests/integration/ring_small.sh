#!/bin/bash
# ring_small.sh - the smallest ring (ring_entries 8) under load keeps its linked timeouts:
# while 50 clients echo through the proxy, connects to a server that never answers the
# SYN end at connect_timeout, and connections that never send their PROXY header end at
# the header timeout (5 s), each within its bounds; the load itself loses nothing. A full
# SQ that cut the connect from its LINK_TIMEOUT would leave those connections hanging.
# Also: the largest ring_entries the configuration takes (32768) starts, its CQ clamped.
. "$(dirname "$0")/lib.sh"

pe=$(free_port); pf=$(free_port); ph=$(free_port); pb=$(free_port); pp=$(free_port)
pm=$(free_port)
ctl=${BUILDDIR:-.}/spargioctl
start_backend blackhole $pb

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2, ring_entries: 8}
log: {level: info, access_log: true}
upstreams:
  - {name: echo, servers: ["127.0.0.1:$pe"]}
  - {name: hole, servers: ["127.0.0.1:$pb"], connect_timeout: 300ms, retries: 0}
listeners:
  - {name: echo-a, bind: "127.0.0.1:$pe", route: echo}
  - {name: fe, bind: "127.0.0.1:$pf", route: to-echo}
  - {name: fh, bind: "127.0.0.1:$ph", route: to-hole}
  - {name: fp, bind: "127.0.0.1:$pp", proxy_protocol: true, route: to-echo}
  - {name: prom, bind: "127.0.0.1:$pm", route: metrics}
routes:
  - {name: metrics, pipeline: [{metrics: {}}]}
  - {name: echo, pipeline: [{echo: {}}]}
  - {name: to-echo, pipeline: [{proxy: {upstream: echo}}]}
  - {name: to-hole, pipeline: [{proxy: {upstream: hole}}]}
CONF
start_daemon "$tmp/conf.yaml"
log_has "io_uring 8 entries" || fail "the ring is not the smallest"

# the load: 50 clients through the proxy, 20 requests each per connection
"$load" --connect "127.0.0.1:$pf" --conns 100000 --concurrency 50 --requests 20 \
	--max-seconds 12 --until-file "$tmp/stop" >"$tmp/load.out" 2>&1 &
load_pid=$!
started_pids+=("$load_pid")
sleep 1

# waits PORT N LO HI: N clients connect at once and send nothing; each must see its
# connection closed between LO and HI seconds later. Prints the times.
waits() {
	timeout 30 python3 - "$@" <<'PY'
import socket, sys, threading, time
port, n, lo, hi = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
times, bad = [], []
def one():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(hi + 5)
    t0 = time.monotonic()
    try:
        s.recv(1)
    except (ConnectionResetError, socket.timeout) as e:
        if isinstance(e, socket.timeout):
            bad.append("still open after %.1f s" % (hi + 5))
    dt = time.monotonic() - t0
    times.append(dt)
    if not lo <= dt <= hi:
        bad.append("closed after %.2f s" % dt)
th = [threading.Thread(target=one) for _ in range(n)]
[t.start() for t in th]
[t.join() for t in th]
print("times %.2f..%.2f" % (min(times), max(times)))
print("BAD " + "; ".join(bad) if bad else "ok")
PY
}

out=$(waits $ph 40 0.2 3) || fail "connect timeouts: the client failed: $out"
echo "connect_timeout under load: $out"
echo "$out" | grep -qx ok || fail "connect_timeout not honoured: $out"
log_wait 30 "connect timeout" || fail "no connect timeout in the log"

out=$(waits $pp 20 4 8) || fail "header timeouts: the client failed: $out"
echo "PROXY header timeout under load: $out"
echo "$out" | grep -qx ok || fail "the PROXY header timeout not honoured: $out"

touch "$tmp/stop"
wait "$load_pid" || fail "the load failed: $(cat "$tmp/load.out")"
cat "$tmp/load.out"
grep -q "failed=0" "$tmp/load.out" || fail "load: $(cat "$tmp/load.out")"

# the overflow counters, per shard: spargioctl shards and /metrics say the same
"$ctl" -s "$tmp/control.sock" --json shards >"$tmp/shards.json" || fail "spargioctl shards"
curl -sS --max-time 5 "http://127.0.0.1:$pm/metrics" >"$tmp/metrics" || fail "GET /metrics"
python3 - "$tmp/shards.json" "$tmp/metrics" <<'PY' || fail "shards and metrics disagree"
import json, re, sys
shards = json.load(open(sys.argv[1]))["shards"]
text = open(sys.argv[2]).read()
assert len(shards) == 2, shards
for s in shards:
    for k in ("cq_overflows", "cq_dropped", "msgs_bounced"):
        m = re.search(r'^spargiod_shard_%s_total\{shard="%d"\} (\d+)$' % (k, s["shard"]),
                      text, re.M)
        assert m, "no %s for shard %d in /metrics" % (k, s["shard"])
        assert int(m.group(1)) == s[k], (k, s["shard"], m.group(1), s[k])
        print("shard %d %s %d" % (s["shard"], k, s[k]))
PY
stop_daemon
[ "$rc" = 0 ] || fail "exit status $rc"

# the largest SQ: 4x is past the kernel's CQ maximum, clamped with a log line
sed -i 's/ring_entries: 8}/ring_entries: 32768}/' "$tmp/conf.yaml"
: >"$log"
start_daemon "$tmp/conf.yaml"
log_has "io_uring 32768 entries (CQ 65536)" || fail "ring_entries 32768: no 65536-entry CQ"
log_has "completion queue clamped" || fail "no line says the CQ was clamped"
echo_ok "TCP:127.0.0.1:$pf" || fail "no echo with ring_entries 32768"
stop_daemon
[ "$rc" = 0 ] || fail "exit status $rc"
echo "ok"
