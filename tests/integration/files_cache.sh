#!/bin/bash
# files_cache.sh - the open-file cache lets go of replaced and deleted files: 60
# concurrent GETs of a large file (all misses at once) share its cache entries; the file
# is replaced (mv over it; rm, then cp) while they are sent, and requested again; once
# the requests ended, the daemon holds no descriptor of a deleted file. The cache's entries and fds
# are in `spargioctl stats` and the metrics, and never above its capacity.
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl

port=$(free_port)
pm=$(free_port)
www=$tmp/www
mkdir -p "$www"
head -c 8M /dev/urandom >"$www/big.bin"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: web, bind: "127.0.0.1:$port", route: static}
  - {name: metrics, bind: "127.0.0.1:$pm", route: metrics}
routes:
  - name: static
    pipeline: [{files: {root: "$www", file_cache: 16, file_cache_valid: 100ms}}]
  - {name: metrics, pipeline: [{metrics: {}}]}
CONF
start_daemon "$tmp/conf.yaml"

deleted_fds() { find /proc/"$pid"/fd -lname '*(deleted)' 2>/dev/null | wc -l; }
# route FIELD: a figure of the static route; cache FIELD: one of its file_cache
route() {
	"$ctl" -s "$tmp/control.sock" --json stats | python3 -c 'import json, sys
r = [r for r in json.load(sys.stdin)["routes"] if r["name"] == "static"][0]
print(r[sys.argv[1]] if len(sys.argv) == 2 else r[sys.argv[1]][sys.argv[2]])' "$@"
}
cache() { route file_cache "$1"; }

# get_many N: N GETs of /big.bin at once, each held after its first bytes (a small receive
# buffer: the 8 MiB cannot all be sent) until $tmp/go exists, then read to the end
batch=0
get_many() {
	batch=$((batch + 1))
	python3 - "$port" "$1" "$tmp/go" >"$tmp/batch.$batch" 2>&1 <<'PY' &
import os, selectors, socket, sys, time
port, n, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    socks.append(s)
for s in socks:
    assert s.recv(65536).startswith(b"HTTP/1.1 200")  # being sent: the file is open
print("started", flush=True)
end = time.time() + 30
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.05)
total = 0
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
while socks:
    for key, _ in sel.select(timeout=30):
        b = key.fileobj.recv(1 << 20)
        total += len(b)
        if not b:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            socks.remove(key.fileobj)
print("done", total, flush=True)
PY
	started_pids+=($!)
	wait_until 20 grep -q started "$tmp/batch.$batch" || fail "batch $batch: the $1 GETs did not start: $(cat "$tmp/batch.$batch")"
}
wait_curls() {
	local b
	touch "$tmp/go"
	for ((b = 1; b <= batch; b++)); do
		wait_until 30 grep -q done "$tmp/batch.$b" || fail "batch $b did not end: $(cat "$tmp/batch.$b")"
	done
}

# 60 misses at once: one entry per shard at most, not one per request
get_many 60
fds=$(cache fds)
[ "$fds" -le 2 ] || fail "60 concurrent misses hold $fds cache fds (duplicates)"
[ "$(cache entries)" -le 2 ] || fail "60 concurrent misses made $(cache entries) entries"

# replaced while they are sent: mv over it, then again with cp into a new file's place
head -c 8M /dev/urandom >"$tmp/new1"
mv "$tmp/new1" "$www/big.bin"
sleep 0.3 # past file_cache_valid: the next requests see the change
get_many 10
head -c 8M /dev/urandom >"$tmp/new2"
rm "$www/big.bin"
sleep 0.3
curl -s -o /dev/null "http://127.0.0.1:$port/big.bin" # a 404 meanwhile
cp "$tmp/new2" "$www/big.bin"
sleep 0.3
get_many 10
[ "$(cache fds)" -le "$(cache capacity)" ] || fail "the cache holds more fds than its capacity"
wait_curls
# no request in flight now: every superseded entry let its file go
wait_until 3 eval '[ "$(cache superseded)" = 0 ]' || fail "superseded entries left: $(cache superseded)"
# what may still hold a deleted file is a shard's index entry not looked at since the
# change (one per shard at most): the next request on that shard notices. A few more
# requests, then none is left.
for i in 1 2 3 4 5 6 7 8; do
	curl -s -o /dev/null "http://127.0.0.1:$port/big.bin"
	[ "$(deleted_fds)" = 0 ] && break
done
wait_until 3 eval '[ "$(deleted_fds)" = 0 ]' ||
	fail "$(deleted_fds) descriptors of deleted files held after the requests ended (cache: fds $(cache fds), entries $(cache entries)): $(ls -l /proc/$pid/fd | grep deleted | head -5)"
[ "$(cache capacity)" = 32 ] || fail "capacity $(cache capacity), want 16 x 2 shards"

# the same figures in the metrics
m=$(curl -s "http://127.0.0.1:$pm/metrics")
grep -q '^spargiod_files_cache_fds{route="static"} [0-9]' <<<"$m" || fail "no spargiod_files_cache_fds"
grep -q '^spargiod_files_cache_capacity{route="static"} 32$' <<<"$m" || fail "no spargiod_files_cache_capacity"
grep -q 'spargiod_files_cache_fds{route="metrics"}' <<<"$m" && fail "a cache figure for a route without files"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: files_cache (60 concurrent misses: $fds cache fds; replaced and deleted under 80 GETs: no deleted file held once they ended)"
