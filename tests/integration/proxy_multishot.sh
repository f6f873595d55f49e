#!/bin/bash
# proxy_multishot.sh - the relay's receive stays armed across messages, within bounds: a
# client trickles 512-byte messages (each its own segment, 1 ms apart) through the proxy
# to a server that reads nothing for 2 s, with a window of a few KiB. The test runs in a
# network namespace of its own with send buffers of at most 64 KiB, so the proxy's send
# to the server blocks at once. Until the server reads, the proxy holds only a few of its
# provided buffers: the one being sent and a short queue behind it; then the receive
# stops and the rest waits in the kernel's socket buffers (a receive left armed would
# take 16 and more of the ring's 256). When the server reads, every byte arrives in order
# (sha256), then the client's FIN, which came while bytes were still queued. Again with
# SPARGIOD_PROXY_NO_MULTISHOT (the path of kernels before 6.17, which the first run takes
# there by itself): one buffer at most, logged, and the same bytes.
if [ -z "${SP_IN_NETNS:-}" ]; then
	unshare -n true 2>/dev/null || { echo "SKIP: cannot make a network namespace here"; exit 77; }
	exec unshare -n env SP_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up && echo "4096 16384 65536" >/proc/sys/net/ipv4/tcp_wmem ||
	{ echo "FAIL: the namespace's loopback and send buffers could not be set up"; exit 1; }
. "$(dirname "$0")/lib.sh"

ps=$(free_port) pp=$(free_port) pm=$(free_port)
start_backend slowhash $ps 2
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 1}
log: {level: info, access_log: true}
upstreams:
  - {name: slow, servers: ["127.0.0.1:$ps"]}
listeners:
  - {name: front, bind: "127.0.0.1:$pp", route: to-slow}
  - {name: prom, bind: "127.0.0.1:$pm", route: metrics}
routes:
  - {name: to-slow, pipeline: [{proxy: {upstream: slow}}]}
  - {name: metrics, pipeline: [{metrics: {}}]}
CONF

bufs_free() {
	curl -sS --max-time 5 "http://127.0.0.1:$pm/metrics" | awk '/^spargiod_shard_bufs_free/ {print $2}'
}

# run NAME MAX_HELD [ENV...]: the trickle through a daemon started with ENV; the most
# buffers held during the stall in $held
run() {
	local name=$1 max=$2 total sent got f
	shift 2
	: >"$log"
	start_daemon "$tmp/conf.yaml" "$@"
	total=$(bufs_free)
	[ "$total" = 256 ] || fail "$name: $total provided buffers free at the start, want 256"
	timeout 60 python3 "$(dirname "$0")/trickle.py" $pp 2000 512 1 >"$tmp/trickle.out" &
	local tpid=$!
	started_pids+=("$tpid")
	held=0
	sleep 0.5
	for _ in $(seq 13); do # the server reads nothing for 2 s
		f=$(bufs_free)
		[ $((total - f)) -gt "$held" ] && held=$((total - f))
		sleep 0.1
	done
	wait "$tpid" || fail "$name: the client failed: $(cat "$tmp/trickle.out")"
	{ read -r sent; read -r got; } <"$tmp/trickle.out"
	[ -n "$sent" ] && [ "$got" = "$sent" ] || fail "$name: the server hashed $got, the client sent $sent"
	wait_until 30 log_has "route=to-slow .* in=1024000 out=65 end=closed" ||
		fail "$name: no clean end with every byte in the access log"
	wait_until 30 eval '[ "$(bufs_free)" = 256 ]' || fail "$name: $(bufs_free) buffers free after, want 256"
	echo "$name: at most $held provided buffers held while the server stalled"
	[ "$held" -le "$max" ] || fail "$name: $held buffers held for one stalled connection, want at most $max"
	stop_daemon TERM
	[ "$rc" = 0 ] || fail "$name: exit status $rc"
}

run multishot 8
if log_has "relay: this kernel has no limited multishot receive"; then
	skip_part "multishot receive: this kernel has none (before 6.17), the queue behind a send is not tested"
else
	[ "$held" -ge 2 ] || fail "multishot: only $held buffer held: no message waited behind the send (the queue went untested)"
fi
run no-multishot 1 SPARGIOD_PROXY_NO_MULTISHOT=1
log_wait 30 "relay: SPARGIOD_PROXY_NO_MULTISHOT: one receive per message" || fail "the fallback was not logged"

echo "PASS: proxy multishot receive (a stalled server: a few buffers held, then back-pressure; every byte in order; the fallback alike)"
