#!/bin/bash
# proxy_lowat.sh - once a direction streams, the proxy keeps what the socket it sends into
# holds unsent near notsent_lowat (default 32 KiB): a client that reads nothing of an
# 8 MiB download finds the proxy's send queue to it (/proc/net/tcp tx_queue: in flight
# + unsent) at most 256 KiB, and well over it with notsent_lowat: 0 (which shows that the
# check can fail); then it reads on and gets every byte.
. "$(dirname "$0")/lib.sh"

pd=$(free_port) p_on=$(free_port) p_off=$(free_port)
head -c $((8 << 20)) /dev/urandom >"$tmp/8m"
start_backend send "$pd" "$tmp/8m"

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
upstreams:
  - {name: down, servers: ["127.0.0.1:$pd"]}
listeners:
  - {name: on, bind: "127.0.0.1:$p_on", route: on}
  - {name: off, bind: "127.0.0.1:$p_off", route: "off"}
routes:
  - {name: on, pipeline: [{proxy: {upstream: down}}]}
  - {name: "off", pipeline: [{proxy: {upstream: down, notsent_lowat: 0}}]}
CONF
start_daemon "$tmp/conf.yaml"

stalled() { timeout 90 python3 "$(dirname "$0")/stalled_read.py" "$1" "$tmp/8m"; }

q=$(stalled "$p_on") || fail "default: $q"
echo "default: send queue $q bytes (notsent_lowat 32 KiB)"
[ "$q" -gt 0 ] && [ "$q" -le $((256 * 1024)) ] ||
	fail "$q bytes queued to a client that reads nothing (want at most 256 KiB)"
q=$(stalled "$p_off") || fail "off: $q"
echo "off: send queue $q bytes with notsent_lowat 0"
[ "$q" -gt $((512 * 1024)) ] || fail "notsent_lowat 0: only $q bytes queued: the check above proves nothing"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc (a shutdown leak or sanitizer report?)"
echo "PASS: proxy notsent_lowat (a streaming download's send queue held near 32 KiB; not with 0; every byte arrives)"
