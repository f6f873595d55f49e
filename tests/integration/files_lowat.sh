#!/bin/bash
# files_lowat.sh - under a large body the files handler keeps what the socket holds unsent
# near notsent_lowat (default 32 KiB) instead of queueing megabytes: a client that reads
# nothing finds the server's send queue (/proc/net/tcp tx_queue: in flight + unsent) at
# most 256 KiB by sendfile, splice and read+send alike, and well over it with
# notsent_lowat: 0 (the kernel's own queueing, which shows that the check can fail);
# then it reads on and gets every byte.
. "$(dirname "$0")/lib.sh"

www=$tmp/www
mkdir -p "$www"
head -c $((8 * 1024 * 1024 + 77)) /dev/urandom >"$www/8m.bin"
cat "$www/8m.bin" >/dev/null # in the page cache: the sendfile path
p_auto=$(free_port) p_splice=$(free_port) p_rw=$(free_port) p_off=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: auto, bind: "127.0.0.1:$p_auto", route: auto}
  - {name: spliced, bind: "127.0.0.1:$p_splice", route: spliced}
  - {name: rw, bind: "127.0.0.1:$p_rw", route: rw}
  - {name: off, bind: "127.0.0.1:$p_off", route: "off"}
routes:
  - {name: auto, pipeline: [{files: {root: "$www"}}]}
  - {name: spliced, pipeline: [{files: {root: "$www", splice: on}}]}
  - {name: rw, pipeline: [{files: {root: "$www", splice: "off"}}]}
  - {name: "off", pipeline: [{files: {root: "$www", notsent_lowat: 0}}]}
CONF
start_daemon "$tmp/conf.yaml"

stalled() { timeout 90 python3 "$(dirname "$0")/stalled_read.py" "$1" "$www/8m.bin" http; }

for route in auto:$p_auto spliced:$p_splice rw:$p_rw; do
	q=$(stalled "${route#*:}") || fail "${route%%:*}: $q"
	echo "${route%%:*}: send queue $q bytes with notsent_lowat 32 KiB"
	[ "$q" -gt 0 ] && [ "$q" -le $((256 * 1024)) ] ||
		fail "${route%%:*}: $q bytes queued to a client that reads nothing (want at most 256 KiB)"
done
q=$(stalled "$p_off") || fail "off: $q"
echo "off: send queue $q bytes with notsent_lowat 0"
[ "$q" -gt $((512 * 1024)) ] || fail "notsent_lowat 0: only $q bytes queued: the check above proves nothing"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc (a shutdown leak or sanitizer report?)"
echo "PASS: files notsent_lowat (the send queue held near 32 KiB by sendfile, splice and read+send; not with 0; every byte arrives)"
