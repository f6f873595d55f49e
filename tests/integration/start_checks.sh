#!/bin/bash
# start_checks.sh - configs that cannot start are refused by `spargiod -t` and by a start
# alike, with the same FILE:LINE:COL: a wildcard beside an address on one port, unix
# paths naming one file (written differently or through a symlink), control and unix
# socket paths that are regular files, a files root that is a system directory (unless
# allow_system_root), and a reload to such a config is rejected. A files root served by a
# daemon that stays root is warned about by -t and at start; not once process.user drops.
# A reload to a unix path written another way keeps the socket.
. "$(dirname "$0")/lib.sh"

# refused NAME POS PATTERN (config on stdin): -t and a start both exit 1 and say it at POS
n=0
refused() {
	local name=$1 pos=$2 pattern=$3 f=$tmp/$1.yaml out rc=0
	cat >"$f"
	out=$(timeout 10 "$bin" -t -c "$f" 2>&1) || rc=$?
	[ "$rc" = 1 ] || fail "$name: -t exit status $rc, want 1: $out"
	grep -qE -- "^$f:$pos: .*$pattern" <<<"$out" || fail "$name: -t: want '$f:$pos: ...$pattern', got: $out"
	rc=0
	out=$(timeout 10 "$bin" -c "$f" 2>&1) || rc=$?
	[ "$rc" = 1 ] || fail "$name: start exit status $rc, want 1: $out"
	grep -qE -- "$f:$pos: .*$pattern" <<<"$out" || fail "$name: start: want '$f:$pos: ...$pattern', got: $out"
	grep -q "another process listens" <<<"$out" && fail "$name: start blames another process: $out"
	n=$((n + 1))
}

p=$(free_port)
refused wildcard4 5:21 "0.0.0.0:$p.*cannot be bound beside '127.0.0.1:$p'" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners:
  - {name: a, bind: "127.0.0.1:$p", route: r}
  - {name: b, bind: "0.0.0.0:$p", route: r}
routes: [{name: r, pipeline: [echo]}]
Y
refused wildcard6 5:21 "127.0.0.1:$p.*beside '\[::\]:$p'.*dual-stack" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners:
  - {name: a, bind: "[::]:$p", route: r}
  - {name: b, bind: "127.0.0.1:$p", route: r}
routes: [{name: r, pipeline: [echo]}]
Y
mkdir "$tmp/x"
refused dot_path 5:21 "duplicate bind 'tcp unix:$tmp/x/u1.sock'" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners:
  - {name: a, bind: "unix:$tmp/x/u1.sock", route: r}
  - {name: b, bind: "unix:$tmp/x/./u1.sock", route: r}
routes: [{name: r, pipeline: [echo]}]
Y
ln -s "$tmp/x" "$tmp/link"
refused symlink_path 5:5 "listener 'b' and listener 'a' \(at 4:5\) bind one file, $tmp/x/u1.sock" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners:
  - {name: a, bind: "unix:$tmp/x/u1.sock", route: r}
  - {name: b, bind: "unix:$tmp/link/u1.sock", route: r}
routes: [{name: r, pipeline: [echo]}]
Y
touch "$tmp/regular"
refused control_regular 2:19 "control.socket '$tmp/regular' exists and is not a socket" <<Y
version: 1
control: {socket: $tmp/regular}
listeners: [{name: a, bind: "127.0.0.1:$p", route: r}]
routes: [{name: r, pipeline: [echo]}]
Y
refused unix_regular 4:5 "listener 'a': unix socket '$tmp/regular' exists and is not a socket" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners:
  - {name: a, bind: "unix:$tmp/regular", route: r}
routes: [{name: r, pipeline: [echo]}]
Y
for root in / /etc/ /proc /sys /proc/self/.. "$tmp/link/../../.."; do
	refused "root$n" 5:27 "files root '$root' is /[a-z]*, a system directory.*allow_system_root: true" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners: [{name: a, bind: "127.0.0.1:$p", route: r}]
routes:
  - {name: r, pipeline: [{files: {root: $root}}]}
Y
done
[ "$(cat "$tmp/regular")" = "" ] || fail "the regular file was changed"

# the override, and the warning of -t for files served as root
cat >"$tmp/etc.yaml" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners: [{name: a, bind: "127.0.0.1:$p", route: r}]
routes:
  - {name: r, pipeline: [{files: {root: /etc, allow_system_root: true}}]}
Y
out=$("$bin" -t -c "$tmp/etc.yaml" 2>&1) || fail "allow_system_root: $out"
if [ "$(id -u)" = 0 ]; then
	grep -qE "^$tmp/etc.yaml:5:27: warning: files root '/etc' is served by a daemon running as root.*process.user" <<<"$out" ||
		fail "-t as root, no warning: $out"
	sed -i 's/^version: 1$/version: 1\nprocess: {user: nobody}/' "$tmp/etc.yaml"
	out=$("$bin" -t -c "$tmp/etc.yaml" 2>&1) || fail "allow_system_root, process.user: $out"
	[ "$out" = "configuration OK" ] || fail "a warning though process.user drops root: $out"
else
	skip_part "not root: the warnings for a files root served as root are not checked"
fi

# a start warns too, and a reload to a system root is rejected, the old config serving
mkdir "$tmp/www" && echo hello >"$tmp/www/index.html"
cat >"$tmp/www.yaml" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners: [{name: a, bind: "127.0.0.1:$p", route: r}]
routes:
  - {name: r, pipeline: [{files: {root: $tmp/www}}]}
Y
start_daemon "$tmp/www.yaml"
if [ "$(id -u)" = 0 ]; then
	log_has "$tmp/www.yaml:5:27: warning: files root '$tmp/www' is served by a daemon running as root" ||
		fail "no warning at start"
fi
sed -i "s|root: $tmp/www|root: /|" "$tmp/www.yaml"
reload_and_wait
log_has "$tmp/www.yaml:5:27: files root '/' is /, a system directory" || fail "reload: no error"
log_has "reload rejected" || fail "reload to a system root not rejected"
[ "$(curl -s --max-time 5 "http://127.0.0.1:$p/")" = hello ] || fail "the old config stopped serving"
stop_daemon

# a unix path written another way names the same socket: a reload keeps it (it used to
# bind it again and fail: "another process listens on it")
cat >"$tmp/unix.yaml" <<Y
version: 1
control: {socket: $tmp/c1.sock}
listeners: [{name: u, bind: "unix:$tmp/x/u1.sock", route: r}]
routes: [{name: r, pipeline: [echo]}]
Y
: >"$log"
start_daemon "$tmp/unix.yaml"
echo_ok "UNIX-CONNECT:$tmp/x/u1.sock" || fail "echo over the unix listener"
sed -i "s|unix:$tmp/x/u1.sock|unix:$tmp//x/./u1.sock|" "$tmp/unix.yaml"
reload_and_wait
log_has "reload: generation 2" || fail "reload to the same socket written differently: $(tail -3 "$log")"
echo_ok "UNIX-CONNECT:$tmp/x/u1.sock" || fail "echo over the unix listener after the reload"
stop_daemon
echo "PASS: start checks ($n configs refused by -t and start alike; system roots; served-as-root warning)"
