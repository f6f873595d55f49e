#!/bin/bash
# files.sh - the files handler serves with curl what it should: small, medium and large
# files byte for byte (GET and HEAD), Content-Type from the built-in table and from
# /etc/mime.types, Date/Server/Cache-Control, index files, redirects for directories,
# autoindex with escaped names (and 403 without it), ranges (206, suffix, open-ended,
# 416, several ranges -> 200), If-Range, ETag/If-None-Match and If-Modified-Since (304),
# a file changed or replaced on disk is served anew after file_cache_valid, a reload
# keeps serving, and both large-body paths (read+send and splice) send the same bytes.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
p2=$(free_port)
p3=$(free_port)
www=$tmp/www
mkdir -p "$www/sub/deeper" "$www/noindex" "$www/listed"
echo "<h1>home</h1>" >"$www/index.html"
echo "sub home" >"$www/sub/index.html"
printf 'plain text\n' >"$www/a.txt"
echo "body { }" >"$www/style.css"
echo "pkg" >"$www/x.deb"
echo "bin" >"$www/noext"
head -c 5000 /dev/urandom >"$www/mid.bin"
head -c 70000 /dev/urandom >"$www/over64k.bin"
head -c 49000 /dev/urandom >"$www/sf.bin" # 32..64 KiB: sendfile when in the page cache
head -c $((3 * 1024 * 1024 + 123)) /dev/urandom >"$www/big.bin"
echo 1 >"$www/listed/plain.txt"
echo 2 >"$www/listed/<b>&\"q'.txt"
mkdir "$www/listed/a dir"
echo hidden >"$www/listed/.secret"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: web, bind: "127.0.0.1:$port", route: static}
  - {name: spliced, bind: "127.0.0.1:$p2", route: spliced}
  - {name: rw, bind: "127.0.0.1:$p3", route: rw}
routes:
  - name: static
    pipeline:
      - files: {root: "$www", autoindex: true, cache_control: "max-age=60",
                file_cache_valid: 200ms}
  - name: spliced
    placement: pinned
    pipeline:
      - files: {root: "$www", splice: on, file_cache: 0}
  - name: rw
    pipeline: [{files: {root: "$www", splice: "off"}}]
CONF
start_daemon "$tmp/conf.yaml"
u=http://127.0.0.1:$port

# same_bytes PATH [CURL-ARGS...]: the body equals the file
same_bytes() {
	local f=$1
	shift
	curl -sf "$@" "$u/$f" -o "$tmp/got" || fail "GET /$f failed"
	cmp -s "$tmp/got" "$www/$f" || fail "GET /$f: body differs from the file"
}
header() { # header NAME: the value in $tmp/h
	grep -i "^$1:" "$tmp/h" | head -1 | cut -d' ' -f2- | tr -d '\r'
}
status() { head -1 "$tmp/h" | cut -d' ' -f2; }

for f in a.txt mid.bin sf.bin over64k.bin big.bin index.html; do
	same_bytes "$f"
	same_bytes "$f" # twice: the second one comes from the cache
done
u=http://127.0.0.1:$p2 same_bytes big.bin   # splice
u=http://127.0.0.1:$p2 same_bytes over64k.bin
curl -sf "http://127.0.0.1:$p2/big.bin" -r 1000-2000000 -o "$tmp/got" &&
	cmp -s "$tmp/got" <(tail -c +1001 "$www/big.bin" | head -c 1999001) || fail "splice: range differs"

# auto: sendfile while the range is in the page cache (4 MiB chunks; a slow reader fills
# the socket, so sendfile stops at EAGAIN and polls); a body whose pages were dropped is
# spliced up to 16 MiB, read and sent over that, and read and sent from where it stops
# being in the cache mid-body; splice: off reads and sends
head -c $((17 * 1024 * 1024 + 7)) /dev/urandom >"$www/huge.bin"
# more than the socket buffers hold: the socket fills, a poll waits for room
curl -sf --limit-rate 12M "http://127.0.0.1:$p2/huge.bin" -o "$tmp/got" && cmp -s "$tmp/got" "$www/huge.bin" ||
	fail "splice to a slow reader: body differs"
same_bytes huge.bin
curl -sf --limit-rate 12M "$u/huge.bin" -o "$tmp/got" && cmp -s "$tmp/got" "$www/huge.bin" ||
	fail "sendfile to a slow reader: body differs"
drop_pages "$www/huge.bin"
same_bytes huge.bin
drop_pages "$www/big.bin"
same_bytes big.bin
drop_pages "$www/big.bin"
curl -sf "$u/big.bin" -r 1000-2000000 -o "$tmp/got" &&
	cmp -s "$tmp/got" <(tail -c +1001 "$www/big.bin" | head -c 1999001) ||
	fail "auto splice of an uncached body: range differs"
cat "$www/big.bin" >/dev/null # in the page cache again, all of it: sendfile
curl -sf --limit-rate 4M "$u/big.bin" -o "$tmp/got" && cmp -s "$tmp/got" "$www/big.bin" ||
	fail "sendfile of a 3 MiB body to a slow reader: body differs"
drop_pages "$www/sf.bin"
same_bytes sf.bin
curl -sf "$u/sf.bin" -r 1000-40000 -o "$tmp/got" &&
	cmp -s "$tmp/got" <(tail -c +1001 "$www/sf.bin" | head -c 39001) || fail "sendfile: small range differs"
# dropped while it goes out: sendfile for the first chunks, read+send for the rest
same_bytes huge.bin # in the cache again
curl -sf --limit-rate 8M "$u/huge.bin" -o "$tmp/got" &
slow=$!
started_pids+=("$slow")
sleep 1
drop_pages "$www/huge.bin"
wait "$slow" && cmp -s "$tmp/got" "$www/huge.bin" || fail "pages dropped mid-body: body differs"
curl -sf "$u/huge.bin" -r 5000000- -o "$tmp/got" &&
	cmp -s "$tmp/got" <(tail -c +5000001 "$www/huge.bin") || fail "sendfile: range differs"
u=http://127.0.0.1:$p3 same_bytes huge.bin
u=http://127.0.0.1:$p3 same_bytes over64k.bin

# heads: Date, Server, types, lengths, validators; HEAD sends no body
curl -sI "$u/a.txt" -o "$tmp/h"
[ "$(status)" = 200 ] || fail "HEAD /a.txt: $(status)"
[ "$(header Server)" = spargiod ] || fail "no Server header"
[[ "$(header Date)" =~ ^[A-Z][a-z]{2},\ [0-9]{2}\ [A-Z][a-z]{2}\ [0-9]{4}\ [0-9:]{8}\ GMT$ ]] || fail "bad Date: $(header Date)"
[ "$(header Content-Type)" = "text/plain; charset=utf-8" ] || fail "a.txt type: $(header Content-Type)"
[ "$(header Content-Length)" = 11 ] || fail "HEAD Content-Length: $(header Content-Length)"
[ "$(header Cache-Control)" = "max-age=60" ] || fail "no Cache-Control"
[ "$(header Accept-Ranges)" = bytes ] || fail "no Accept-Ranges"
etag=$(header ETag)
lm=$(header Last-Modified)
[[ "$etag" =~ ^\"[0-9a-f-]+\"$ ]] || fail "bad ETag: $etag"
[ "$(date -u -d "$lm" +%s)" = "$(stat -c %Y "$www/a.txt")" ] || fail "Last-Modified $lm is not the mtime"
printf 'HEAD /big.bin HTTP/1.0\r\n\r\n' | python3 "$(dirname "$0")/http_raw.py" "$port" >"$tmp/got" ||
	fail "HEAD: no close"
[ "$(tail -c 4 "$tmp/got" | od -An -c | tr -d ' ')" = '\r\n\r\n' ] || fail "HEAD sent a body"
curl -sI "$u/style.css" -o "$tmp/h"
[ "$(header Content-Type)" = "text/css; charset=utf-8" ] || fail "css type: $(header Content-Type)"
curl -sI "$u/noext" -o "$tmp/h"
[ "$(header Content-Type)" = "application/octet-stream" ] || fail "default type: $(header Content-Type)"
if grep -q '^application/vnd.debian.binary-package.*\bdeb\b' /etc/mime.types 2>/dev/null; then
	curl -sI "$u/x.deb" -o "$tmp/h"
	[ "$(header Content-Type)" = application/vnd.debian.binary-package ] ||
		fail "type from /etc/mime.types: $(header Content-Type)"
fi

# index files and redirects
[ "$(curl -sf "$u/")" = "<h1>home</h1>" ] || fail "/ is not index.html"
[ "$(curl -sf "$u/sub/")" = "sub home" ] || fail "/sub/ is not its index.html"
curl -s -o /dev/null -D "$tmp/h" "$u/sub?x=1"
[ "$(status)" = 301 ] && [ "$(header Location)" = "/sub/?x=1" ] || fail "/sub: $(status) $(header Location)"
[ "$(curl -sfL "$u/sub")" = "sub home" ] || fail "following the redirect"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$u/nope.txt")" = 404 ] || fail "missing file not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$u/a.txt/")" = 404 ] || fail "file with a slash not 404"

# autoindex: names escaped, dotfiles left out; a route without it answers 403
curl -sf "$u/listed/" -o "$tmp/list" || fail "autoindex failed"
grep -q 'href="./plain.txt"' "$tmp/list" || fail "autoindex lacks plain.txt"
grep -q 'href="./a%20dir/">a dir/</a>' "$tmp/list" || fail "autoindex: directory entry"
grep -qF '&lt;b&gt;&amp;&quot;q&#39;.txt</a>' "$tmp/list" || fail "autoindex: name not HTML-escaped"
grep -qF 'href="./%3Cb%3E%26%22q%27.txt"' "$tmp/list" || fail "autoindex: link not percent-encoded"
grep -q '<b>&' "$tmp/list" && fail "autoindex: raw markup from a file name"
grep -q secret "$tmp/list" && fail "autoindex lists a dotfile"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p2/noindex/")" = 403 ] || fail "no autoindex: not 403"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$u/noindex/")" = 200 ] || fail "empty directory listing"

# ranges
[ "$(curl -sf -r 0-4 "$u/a.txt")" = plain ] || fail "range 0-4"
[ "$(curl -sf -r 6- "$u/a.txt")" = text ] || fail "range 6-"
[ "$(curl -sf -r -5 "$u/a.txt")" = text ] || fail "suffix range -5"
curl -s -r 100-200 "$u/a.txt" -D "$tmp/h" -o /dev/null
[ "$(status)" = 416 ] && [ "$(header Content-Range)" = "bytes */11" ] || fail "416: $(status) $(header Content-Range)"
curl -s -r 0-1,4-5 "$u/a.txt" -D "$tmp/h" -o "$tmp/got"
[ "$(status)" = 200 ] && cmp -s "$tmp/got" "$www/a.txt" || fail "several ranges: not the whole file"
curl -s -r 1000-69999 "$u/over64k.bin" -D "$tmp/h" -o "$tmp/got"
[ "$(status)" = 206 ] && [ "$(header Content-Range)" = "bytes 1000-69999/70000" ] || fail "206 head"
cmp -s "$tmp/got" <(tail -c +1001 "$www/over64k.bin") || fail "range body differs"
curl -s -r 2000000- "$u/big.bin" -o "$tmp/got"
cmp -s "$tmp/got" <(tail -c +2000001 "$www/big.bin") || fail "large range body differs"
# If-Range: our ETag or Last-Modified -> 206; anything else -> 200 with everything
[ "$(curl -s -o /dev/null -w '%{http_code}' -r 0-1 -H "If-Range: $etag" "$u/a.txt")" = 206 ] || fail "If-Range etag"
[ "$(curl -s -o /dev/null -w '%{http_code}' -r 0-1 -H "If-Range: $lm" "$u/a.txt")" = 206 ] || fail "If-Range date"
[ "$(curl -s -o /dev/null -w '%{http_code}' -r 0-1 -H 'If-Range: "other"' "$u/a.txt")" = 200 ] || fail "If-Range mismatch"
[ "$(curl -s -o /dev/null -w '%{http_code}' -r 0-1 -H "If-Range: W/$etag" "$u/a.txt")" = 200 ] || fail "If-Range weak"
# an empty If-Range names no validator: it cannot hold (curl sends "If-Range:" for "If-Range;")
[ "$(curl -s -o /dev/null -w '%{http_code}' -r 0-1 -H 'If-Range;' "$u/a.txt")" = 200 ] || fail "empty If-Range gave a range"

# conditionals
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code -H "If-None-Match: $etag" "$u/a.txt")" = 304 ] || fail "If-None-Match: not 304"
[ "$(code -H "If-None-Match: \"x\", W/$etag" "$u/a.txt")" = 304 ] || fail "If-None-Match list"
[ "$(code -H 'If-None-Match: *' "$u/a.txt")" = 304 ] || fail "If-None-Match *"
[ "$(code -H 'If-None-Match: "x"' "$u/a.txt")" = 200 ] || fail "If-None-Match other"
[ "$(code -H "If-Modified-Since: $lm" "$u/a.txt")" = 304 ] || fail "If-Modified-Since: not 304"
[ "$(code -H 'If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT' "$u/a.txt")" = 200 ] || fail "old IMS"
[ "$(code -H 'If-None-Match: "x"' -H "If-Modified-Since: $lm" "$u/a.txt")" = 200 ] ||
	fail "If-None-Match must win over If-Modified-Since"
rm -f "$tmp/got"
curl -s -D "$tmp/h" -o "$tmp/got" -H "If-None-Match: $etag" "$u/a.txt"
[ ! -s "$tmp/got" ] && [ "$(header ETag)" = "$etag" ] || fail "304 with a body or without its ETag"

# changes on disk are seen after file_cache_valid: in place, and by rename
same_bytes a.txt
printf 'changed text, longer\n' >"$www/a.txt"
touch -d '2001-01-01' "$www/a.txt"
# One shard seeing the change is not all: each shard's cache revalidates its own entry
# file_cache_valid (200 ms) after its last check. Past that (+100 ms margin) no shard may
# serve the old file: four new connections, spread over the shards by the listener.
all_shards_past_valid() { sleep 0.3; }
wait_until 30 eval 'curl -s "$u/a.txt" | grep -q changed' || fail "a changed file is still served old"
all_shards_past_valid
for i in 1 2 3 4; do same_bytes a.txt; done
printf 'renamed in\n' >"$www/new.txt"
mv "$www/new.txt" "$www/a.txt"
wait_until 30 eval 'curl -s "$u/a.txt" | grep -q renamed' || fail "a replaced file is still served old"
all_shards_past_valid
for i in 1 2 3 4; do same_bytes a.txt; done
rm "$www/a.txt"
wait_until 30 eval '[ "$(code "$u/a.txt")" = 404 ]' || fail "a removed file is still served"
all_shards_past_valid
for i in 1 2 3 4; do [ "$(code "$u/a.txt")" = 404 ] || fail "a removed file is still served by a shard"; done

# many files through a small cache; a reload keeps serving
for i in $(seq 40); do echo "$i" >"$www/sub/deeper/f$i"; done
for i in $(seq 40); do [ "$(curl -s "$u/sub/deeper/f$i")" = "$i" ] || fail "f$i"; done
reload_and_wait
same_bytes mid.bin
log_wait 30 "method=GET path=/mid.bin status=200 bytes=" || fail "no access-log line for /mid.bin"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: files (bodies, heads, types, index, redirect, autoindex, ranges, If-Range, 304s, changes on disk, splice, sendfile from the page cache and its fallback, reload)"
