#!/bin/bash
# files_security.sh - nothing outside the files root is ever served: dot-dot in every
# spelling (/../, %2e%2e/, ..%2f, %2f, backslashes, absolute-form), NUL bytes raw and
# encoded, symbolic links out of the root (absolute, relative, to a directory, through
# /proc), link loops, a link swapped in after the file was cached; FIFOs are not opened
# for reading (no hang); dotfiles are hidden, denied or allowed as configured; links that
# stay inside the root work. Every answer is collected: the secret never appears.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
pd=$(free_port)
pa=$(free_port)
secret="TOPSECRET-$RANDOM-$RANDOM"
www=$tmp/www
out=$tmp/outside
mkdir -p "$www/sub" "$out" "$www/.git"
echo "$secret" >"$out/secret.txt"
echo "inside" >"$www/inside.txt"
echo "swap inside" >"$www/swap.txt"
echo "$secret env" >"$www/.env" # dotfiles count as secret unless allowed
echo "$secret git" >"$www/.git/config"
ln -s "$out/secret.txt" "$www/abs_link"
ln -s ../outside/secret.txt "$www/rel_link"
ln -s "$out" "$www/outdir"
ln -s ../outside "$www/reloutdir"
ln -s ../../outside/secret.txt "$www/sub/deep_link"
ln -s loop2 "$www/loop1"
ln -s loop1 "$www/loop2"
ln -s selfloop "$www/selfloop"
ln -s "/proc/self/root$out/secret.txt" "$www/magic"
ln -s /proc/self/cwd "$www/cwd"
ln -s inside.txt "$www/inlink"
ln -s ../inside.txt "$www/sub/uplink"
mkfifo "$www/fifo"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: web, bind: "127.0.0.1:$port", route: static}
  - {name: deny, bind: "127.0.0.1:$pd", route: deny}
  - {name: allow, bind: "127.0.0.1:$pa", route: allow}
routes:
  - name: static
    pipeline: [{files: {root: "$www", autoindex: true, file_cache_valid: 100ms}}]
  - name: deny
    pipeline: [{files: {root: "$www", dotfiles: deny}}]
  - name: allow
    pipeline: [{files: {root: "$www", dotfiles: allow}}]
CONF
start_daemon "$tmp/conf.yaml"

n=0
# raw_status TARGET [PORT]: send "GET TARGET HTTP/1.1" as is, keep the answer in
# $tmp/resp.N and its status in $tmp/status
raw_status() {
	local target=$1 p=${2:-$port}
	n=$((n + 1))
	printf 'GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n' "$target" |
		timeout 10 python3 "$(dirname "$0")/http_raw.py" "$p" --timeout 3 >"$tmp/resp.$n"
	head -1 "$tmp/resp.$n" | cut -d' ' -f2 >"$tmp/status"
}
# raw_get STATUS TARGET [PORT]: the same, wanting STATUS
raw_get() {
	local got
	raw_status "$2" "${3:-$port}"
	got=$(cat "$tmp/status")
	[ "$got" = "$1" ] || fail "GET $2: $got, want $1"
}

raw_get 400 '/../outside/secret.txt'
raw_get 400 '/sub/../../outside/secret.txt'
raw_get 400 '/%2e%2e/outside/secret.txt'
raw_get 400 '/%2E%2E/outside/secret.txt'
raw_get 400 '/..%2foutside%2fsecret.txt'
raw_get 400 '/%2e%2e%2foutside%2fsecret.txt'
raw_get 400 '/sub/%2e%2e/%2e%2e/outside/secret.txt'
raw_get 400 '/sub%2f..%2f..%2foutside/secret.txt'
raw_get 400 '/..\outside\secret.txt'
raw_get 400 '/%5c..%5coutside%5csecret.txt'
raw_get 400 'http://h/../outside/secret.txt'
raw_get 400 '/inside.txt%00.html'
raw_get 400 '/%00'
raw_get 400 '../outside/secret.txt'
raw_get 404 '/%252e%252e/outside/secret.txt' # decoded once: a literal "%2e%2e" directory
raw_get 404 '/abs_link'
raw_get 404 '/rel_link'
raw_get 404 '/outdir/secret.txt'
raw_get 404 '/reloutdir/secret.txt'
raw_get 404 '/outdir/'
raw_get 404 '/sub/deep_link'
raw_get 404 '/loop1'
raw_get 404 '/selfloop'
raw_get 404 '/magic'
raw_get 404 '/cwd/'
raw_get 404 '/fifo'
raw_get 404 '/.env'
raw_get 404 '/.git/config'
raw_get 404 '/sub/../.env'
raw_get 403 '/.env' "$pd"
raw_get 403 '/.git/config' "$pd"
raw_get 200 '/inlink'
grep -q '^inside$' "$tmp/resp.$n" || fail "a link inside the root: wrong body"
raw_get 200 '/sub/uplink'
raw_get 200 '/./sub/./../inside.txt'
raw_get 301 '/sub'
raw_get 200 '/'
grep -q 'inlink' "$tmp/resp.$n" || fail "no listing of the root"
# a raw NUL byte in the request line
n=$((n + 1))
printf 'GET /inside.txt\0.html HTTP/1.1\r\nHost: h\r\n\r\n' |
	timeout 10 python3 "$(dirname "$0")/http_raw.py" "$port" --timeout 3 >"$tmp/resp.$n"
[ "$(head -1 "$tmp/resp.$n" | cut -d' ' -f2)" = 400 ] || fail "raw NUL: $(head -1 "$tmp/resp.$n")"
# curl normalises paths unless told not to; with --path-as-is the dots reach us
[ "$(curl -s --path-as-is -o "$tmp/resp.curl1" -w '%{http_code}' "http://127.0.0.1:$port/../outside/secret.txt")" = 400 ] ||
	fail "curl --path-as-is /../"

# a cached file swapped for a link out of the root: after revalidation, a 404
raw_get 200 '/swap.txt'
raw_get 200 '/swap.txt'
ln -sf "$out/secret.txt" "$www/swap.txt"
wait_until 30 eval 'raw_status /swap.txt; [ "$(cat "$tmp/status")" = 404 ]' || fail "a swapped-in link out of the root is served"
# and a directory swapped for a link out of the root
mkdir "$www/dir2"
echo "dir2 file" >"$www/dir2/secret.txt"
raw_get 200 '/dir2/secret.txt'
mv "$www/dir2" "$www/dir2.old"
ln -s "$out" "$www/dir2"
wait_until 30 eval 'raw_status /dir2/secret.txt; [ "$(cat "$tmp/status")" = 404 ]' || fail "a swapped-in directory link is followed"
# dotfiles: allow
raw_get 200 '/.env' "$pa"
allowed=$n

# autoindex lists no link that leads out of the root (nor loops, magic links), only those
# a request can follow; a link to a directory inside is listed as a directory
for dir in / /sub/; do
	curl -sf "http://127.0.0.1:$port$dir" -o "$tmp/list" || fail "autoindex of $dir failed"
	grep -q 'href="./' "$tmp/list" || fail "autoindex of $dir lists nothing"
	for bad in abs_link rel_link outdir reloutdir deep_link swap.txt dir2 loop1 loop2 selfloop magic cwd; do
		grep -qF -e "\"./$bad\"" -e "\"./$bad/\"" "$tmp/list" && fail "autoindex of $dir lists the link $bad: $(cat "$tmp/list")"
	done
done
curl -sf "http://127.0.0.1:$port/" | grep -q 'href="./inlink">inlink</a>' || fail "autoindex lacks the link inlink"
curl -sf "http://127.0.0.1:$port/sub/" | grep -q 'href="./uplink">' || fail "autoindex lacks the link sub/uplink"
ln -s sub "$www/sublink"
curl -sf "http://127.0.0.1:$port/" | grep -q 'href="./sublink/">sublink/</a>' || fail "a link to a directory inside is not listed as one"
rm "$www/sublink"

# the secret never left: no answer but the allowed dotfile carries it
for i in $(seq "$n"); do
	[ "$i" = "$allowed" ] && continue
	grep -q "$secret" "$tmp/resp.$i" && fail "answer $i carries the secret: $(head -1 "$tmp/resp.$i")"
done
grep -q "$secret" "$tmp/resp.curl1" && fail "curl got the secret"
grep -q "$secret" "$tmp/resp.$allowed" || fail "dotfiles: allow did not serve .env"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: files_security ($n requests: dot-dot in every spelling, NUL, backslash, links out, loops, /proc, FIFO, swapped links, dotfiles; no secret served)"
