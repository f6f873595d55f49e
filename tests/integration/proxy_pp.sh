#!/bin/bash
# proxy_pp.sh - the PROXY protocol in and out: a listener with proxy_protocol takes v1 and
# v2 headers (also in pieces), the header's source is the client for the ACL, the access
# log and the header the proxy sends on (v1 and v2, checked byte for byte at the server);
# the bytes after the header pass intact; no header, a bad one or a denied source closes
# the connection before any server sees it; a plain listener sends its real addresses.
. "$(dirname "$0")/lib.sh"

pr=$(free_port)
start_backend record $pr "$tmp/seen"
p1=$(free_port); p2=$(free_port); pa=$(free_port); pp=$(free_port)

cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
log: {level: info, access_log: true}
upstreams:
  - {name: rec, servers: ["127.0.0.1:$pr"]}
listeners:
  - {name: in-v1, bind: "127.0.0.1:$p1", proxy_protocol: true, route: out-v1}
  - {name: in-v2, bind: "127.0.0.1:$p2", proxy_protocol: true, route: out-v2}
  - {name: in-acl, bind: "127.0.0.1:$pa", proxy_protocol: true, route: acl}
  - {name: plain, bind: "127.0.0.1:$pp", route: out-v2}
routes:
  - {name: out-v1, pipeline: [{proxy: {upstream: rec, send_proxy_protocol: v1}}]}
  - {name: out-v2, pipeline: [{proxy: {upstream: rec, send_proxy_protocol: v2}}]}
  - {name: acl, pipeline: [{acl: {deny: ["10.66.0.0/16"]}}, {proxy: {upstream: rec}}]}
CONF
start_daemon "$tmp/conf.yaml"

# send PORT HEADER_HEX [SPLIT]: send the header (in two pieces 200 ms apart when SPLIT),
# then a line; print that line once it came back (the server echoes all it got, the
# header it was sent too), else what came ("closed" when nothing did)
send() {
	timeout 15 python3 - "$@" <<'PY'
import socket, sys, time
port, hdr = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    if len(sys.argv) > 3:
        s.sendall(hdr[:7]); time.sleep(0.2); s.sendall(hdr[7:])
    else:
        s.sendall(hdr)
    s.sendall(b"payload 12345\n")
    got = b""
    while not got.endswith(b"payload 12345\n"):
        b = s.recv(100)
        if not b:
            break
        got += b
    print("payload 12345" if got.endswith(b"payload 12345\n") else got.hex() or "closed")
except ConnectionResetError:
    print("closed")
PY
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
v2sig=0d0a0d0a000d0a515549540a
last_seen() { tail -1 "$tmp/seen"; }

# v1 in, v1 out: the server sees the client's header addresses, then the payload
out=$(send $p1 "$(hex $'PROXY TCP4 10.1.2.3 192.0.2.9 1234 80\r\n')")
[ "$out" = "payload 12345" ] || fail "v1 in: got '$out'"
[ "$(last_seen)" = "$(hex $'PROXY TCP4 10.1.2.3 192.0.2.9 1234 80\r\npayload 12345\n')" ] ||
	fail "v1 out: server saw $(last_seen)"
wait_until 30 log_has "listener=in-v1 route=out-v1 client=10.1.2.3:1234 .* end=closed upstream=rec" ||
	fail "access log does not name the PROXY client"

# v2 in (inet), v2 out: byte for byte
v2in=${v2sig}2111000c0a090807c0000201022b01bb   # 10.9.8.7:555 -> 192.0.2.1:443
out=$(send $p2 "$v2in")
[ "$out" = "payload 12345" ] || fail "v2 in: got '$out'"
[ "$(last_seen)" = "${v2in}$(hex $'payload 12345\n')" ] || fail "v2 out: server saw $(last_seen)"

# v2 in (inet6, with a TLV to skip), v1 out, sent in two pieces
v6=${v2sig}2121002920010db8000000000000000000000001fd000000000000000000000000000002005000500400020000
out=$(send $p1 "$v6" split)
[ "$out" = "payload 12345" ] || fail "v2 inet6 in pieces: got '$out'"
[ "$(last_seen)" = "$(hex $'PROXY TCP6 2001:db8::1 fd00::2 80 80\r\npayload 12345\n')" ] ||
	fail "v2 inet6 -> v1: server saw $(last_seen)"

# v2 LOCAL (a balancer's own health check): the real addresses stand
out=$(send $p1 "${v2sig}20000000")
[ "$out" = "payload 12345" ] || fail "v2 LOCAL: got '$out'"
last_seen | grep -q "^$(hex 'PROXY TCP4 127.0.0.1 127.0.0.1 ')" || fail "v2 LOCAL -> v1: $(last_seen)"

# the ACL judges the header's source
n=$(wc -l <"$tmp/seen")
out=$(send $pa "$(hex $'PROXY TCP4 10.66.1.1 192.0.2.9 1234 80\r\n')")
[ "$out" = closed ] || fail "denied PROXY source got '$out'"
wait_until 30 log_has "listener=in-acl route=acl client=10.66.1.1:1234 .* end=denied stage=acl" ||
	fail "no denied access line for the PROXY source"
out=$(send $pa "$(hex $'PROXY TCP4 10.67.1.1 192.0.2.9 1234 80\r\n')")
[ "$out" = "payload 12345" ] || fail "allowed PROXY source got '$out'"

# no header, a bad one: closed, and no server connection
for bad in "$(hex $'GET / HTTP/1.0\r\n')" "$(hex $'PROXY TCP4 10.1.2.3 nope 1 2\r\n')" \
	"$(hex $'PROXY TCP4 10.1.2.3  192.0.2.9 1 2\r\n')" "${v2sig}3111000c0a090807c0000201022b01bb"; do
	out=$(send $p1 "$bad")
	[ "$out" = closed ] || fail "bad header $bad got '$out'"
done
[ "$(wc -l <"$tmp/seen")" = $((n + 1)) ] || fail "a server saw a connection with a bad or denied header"
[ "$(log_count 'end=bad proxy header')" = 4 ] || fail "want 4 'bad proxy header' lines"

# a plain listener sends its real addresses
out=$(send $pp "")
[ "$out" = "payload 12345" ] || fail "plain listener: got '$out'"
want=${v2sig}2111000c7f0000017f000001
last_seen | grep -q "^$want" || fail "plain -> v2: $(last_seen)"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: proxy PROXY protocol (v1/v2 in, v1/v2 out, pieces, LOCAL, ACL on the header source, bad headers)"
