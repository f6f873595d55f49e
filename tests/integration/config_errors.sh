#!/bin/bash
# config_errors.sh - `spargiod -t` and start-up on bad configs: every kind of error is
# reported as FILE:LINE:COL with a clear message, all errors of a file at once, unknown
# keys with a suggestion, hostile YAML rejected fast; the exit statuses of spargiod(8).
. "$(dirname "$0")/lib.sh"
src=${srcdir:-$(dirname "$0")/../..}

# expect_error NAME LINE:COL PATTERN  (config on stdin)
n=0
expect_error() {
	local name=$1 pos=$2 pattern=$3 f=$tmp/$1.yaml out rc=0
	cat >"$f"
	out=$(timeout 10 "$bin" -t -c "$f" 2>&1) || rc=$?
	[ "$rc" = 1 ] || fail "$name: exit status $rc, want 1: $out"
	grep -qE -- "^$f:$pos: .*$pattern" <<<"$out" || fail "$name: want '$f:$pos: ...$pattern', got: $out"
	n=$((n + 1))
}

expect_error unknown_key 3:3 "unknown key 'shrads'.*did you mean 'shards'" <<'Y'
version: 1
engine:
  shrads: 2
Y
expect_error wrong_type 3:11 "shards" <<'Y'
version: 1
engine:
  shards: many
Y
expect_error bad_duration 2:25 "drain_timeout" <<'Y'
version: 1
limits: {drain_timeout: 5 parsecs}
Y
expect_error unknown_route 3:46 "nowhere" <<'Y'
version: 1
listeners:
  - {name: a, bind: "127.0.0.1:7000", route: nowhere}
Y
expect_error handler_not_last 6:[0-9]+ "handler|last" <<'Y'
version: 1
listeners:
  - {name: a, bind: "127.0.0.1:7000", route: r}
routes:
  - name: r
    pipeline: [{echo: {}}, {acl: {allow: ["127.0.0.0/8"]}}]
Y
expect_error no_handler 6:[0-9]+ "handler" <<'Y'
version: 1
listeners:
  - {name: a, bind: "127.0.0.1:7000", route: r}
routes:
  - name: r
    pipeline: [{acl: {allow: ["127.0.0.0/8"]}}]
Y
expect_error udp_on_tcp [0-9]+:[0-9]+ "udp" <<'Y'
version: 1
upstreams:
  - {name: dns, servers: [{address: "127.0.0.1:53"}]}
listeners:
  - {name: a, bind: "127.0.0.1:7000", protocol: tcp, route: r}
routes:
  - {name: r, pipeline: [{udp_proxy: {upstream: dns}}]}
Y
expect_error duplicate_name 4:[0-9]+ "duplicate|already" <<'Y'
version: 1
listeners:
  - {name: a, bind: "127.0.0.1:7000", route: r}
  - {name: a, bind: "127.0.0.1:7001", route: r}
routes:
  - {name: r, pipeline: [{echo: {}}]}
Y
expect_error bad_address 3:[0-9]+ "port|address" <<'Y'
version: 1
listeners:
  - {name: a, bind: "127.0.0.1", route: r}
routes:
  - {name: r, pipeline: [{echo: {}}]}
Y
expect_error bad_cidr 5:[0-9]+ "300.1.2.3/8" <<'Y'
version: 1
listeners:
  - {name: a, bind: "127.0.0.1:7000", route: r}
routes:
  - {name: r, pipeline: [{acl: {allow: ["300.1.2.3/8"]}}, {echo: {}}]}
Y
expect_error missing_bind 3:[0-9]+ "bind" <<'Y'
version: 1
listeners:
  - {name: a, route: r}
routes:
  - {name: r, pipeline: [{echo: {}}]}
Y
expect_error not_yaml [23]:[0-9]+ "YAML syntax error" <<'Y'
version: 1
engine: {shards: [1, 2
Y

# TLS is not in this build: a `tls:` listener or upstream is refused (never served in
# clear text), by -t and at start
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
	-subj /CN=localhost -days 2 >/dev/null 2>&1 || fail "openssl req"
expect_error tls_listener 5:10 "listener 't': tls: TLS termination is not in this build" <<Y
version: 1
listeners:
  - name: t
    bind: "127.0.0.1:7443"
    tls: {cert: $tmp/cert.pem, key: $tmp/key.pem}
    route: r
routes:
  - {name: r, pipeline: [echo]}
Y
out=$(timeout 10 "$bin" -c "$tmp/tls_listener.yaml" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "$tmp/tls_listener.yaml:5:10: listener 't': tls:" <<<"$out" ||
	fail "a tls listener was not refused at start: $rc $out"
expect_error tls_upstream 5:10 "upstream 'u': tls: TLS origination is not in this build" <<'Y'
version: 1
upstreams:
  - name: u
    servers: ["127.0.0.1:9"]
    tls: {verify: false}
Y

# all errors of a file, not just the first
cat >"$tmp/many.yaml" <<'Y'
version: 1
engine: {shrads: 2, steal: maybe}
log: {level: loud}
listeners:
  - {name: a, bind: "127.0.0.1:99999", route: nowhere}
Y
out=$("$bin" -t -c "$tmp/many.yaml" 2>&1)
[ "$(grep -cE "^$tmp/many.yaml:[0-9]+:[0-9]+: " <<<"$out")" -ge 5 ] || fail "not every error reported: $out"

# hostile YAML: rejected fast, positioned
{ echo 'a: &a ["x","x","x","x","x","x","x","x","x"]'
  for i in $(seq 1 30); do p=$((i - 1)); [ $p = 0 ] && p=a; echo "b$i: &b$i [*$p,*$p,*$p,*$p,*$p,*$p,*$p,*$p,*$p]"; done; } >"$tmp/bomb.yaml"
s=$(date +%s%N); out=$(timeout 10 "$bin" -t -c "$tmp/bomb.yaml" 2>&1); rc=$?; e=$(date +%s%N)
[ "$rc" = 1 ] || fail "alias bomb: exit $rc"
grep -qE "^$tmp/bomb.yaml:1:[0-9]+: .*(alias|anchor)" <<<"$out" || fail "alias bomb: $out"
[ $(((e - s) / 1000000)) -lt 2000 ] || fail "alias bomb took $(((e - s) / 1000000)) ms"
python3 -c 'print("a: " + "[" * 10000 + "]" * 10000)' >"$tmp/deep.yaml"
out=$(timeout 10 "$bin" -t -c "$tmp/deep.yaml" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -qE "^$tmp/deep.yaml:1:[0-9]+: .*(deep|nest)" <<<"$out" || fail "deep nesting: $rc $out"
head -c 4096 /dev/urandom >"$tmp/binary.yaml"
out=$(timeout 10 "$bin" -t -c "$tmp/binary.yaml" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -qE "^$tmp/binary.yaml:[0-9]+:[0-9]+: " <<<"$out" || fail "binary: $rc $out"
python3 -c 'print("version: 1\nlog: {level: \"" + "x" * 2000000 + "\"}")' >"$tmp/huge.yaml"
out=$(timeout 10 "$bin" -t -c "$tmp/huge.yaml" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -qE "^$tmp/huge.yaml:" <<<"$out" || fail "huge file: $rc $out"

# good configs, the shipped ones included
cat >"$tmp/good.yaml" <<'Y'
version: 1
listeners:
  - {name: a, bind: "127.0.0.1:7000", route: r}
routes:
  - {name: r, pipeline: [{echo: {}}]}
Y
out=$("$bin" -t -c "$tmp/good.yaml" 2>&1) && [ "$out" = "configuration OK" ] || fail "good config: $out"
for f in "$src/conf/spargiod.yaml" "$src/conf/demo.yaml"; do
	[ -f "$f" ] || fail "$f: no such file (a shipped config)"
	grep -qE "^process:" "$f" || fail "$f does not drop privileges (process.user)"
	out=$("$bin" -t -c "$f" 2>&1) && [ "$out" = "configuration OK" ] && continue
	# the shipped config names a user made at install (systemd/spargiod.sysusers)
	getent passwd spargiod >/dev/null || [ "$(grep -vc "no user 'spargiod' on this system" <<<"$out")" != 0 ] ||
		continue
	fail "$f does not pass -t: $out"
done

# exit statuses: start with a bad config 1, bad usage 2, bind failure 3, -V 0
"$bin" -c "$tmp/many.yaml" >/dev/null 2>&1; rc=$?
[ "$rc" = 1 ] || fail "start with a bad config: exit $rc, want 1"
"$bin" --no-such-flag >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] || fail "bad usage: exit $rc, want 2"
port=$(free_port)
python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1); time.sleep(5)' "$port" &
started_pids+=("$!")
wait_until 30 eval "(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null" || fail "helper socket did not listen"
sed "s/7000/$port/" "$tmp/good.yaml" >"$tmp/taken.yaml"
out=$(timeout 10 "$bin" -c "$tmp/taken.yaml" 2>&1); rc=$?
[ "$rc" = 3 ] || fail "bind failure: exit $rc, want 3: $out"
grep -qE "$tmp/taken.yaml:3:[0-9]+: listener 'a': cannot bind 127.0.0.1:$port: Address already in use" <<<"$out" ||
	fail "bind failure message: $out"
out=$("$bin" -V) || fail "-V failed"
grep -q "^spargiod [0-9]" <<<"$out" && grep -q "+msg_ring" <<<"$out" || fail "-V: $out"
echo "PASS: config errors ($n positioned error kinds, all errors at once, hostile YAML, exit statuses)"
