#!/bin/bash
# filters.sh - the acl filter lets allowed clients through and closes denied ones at
# once (IPv4 and IPv6, deny wins over allow); rate_limit refuses a source past its burst
# and lets it in again once tokens came back.
. "$(dirname "$0")/lib.sh"

pa=$(free_port); pd=$(free_port); p6=$(free_port); pr=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: allowed, bind: "127.0.0.1:$pa", route: allow_lo}
  - {name: denied, bind: "127.0.0.1:$pd", route: deny_one}
  - {name: v6, bind: "[::1]:$p6", route: allow_v4_only}
  - {name: limited, bind: "127.0.0.1:$pr", route: limited}
routes:
  - name: allow_lo
    pipeline: [{acl: {allow: ["127.0.0.0/8"]}}, {echo: {}}]
  - name: deny_one
    pipeline: [{acl: {allow: ["127.0.0.0/8"], deny: ["127.0.0.1/32"]}}, {echo: {}}]
  - name: allow_v4_only
    pipeline: [{acl: {allow: ["10.0.0.0/8"]}}, {echo: {}}]
  - name: limited
    placement: pinned
    pipeline: [{rate_limit: {per_source: 2/s, burst: 3}}, {echo: {}}]
CONF
start_daemon "$tmp/conf.yaml"

echo_ok TCP4:127.0.0.1:$pa || fail "acl: an allowed client was refused"
echo_ok TCP4:127.0.0.1:$pd && fail "acl: a denied client got an echo"
wait_until 30 log_has "access listener=denied route=deny_one client=127.0.0.1:[0-9]* end=denied stage=acl" ||
	fail "acl: no denied line in the access log"
echo_ok TCP6:[::1]:$p6 && fail "acl: ::1 passed an IPv4-only allow list"

# 10 connections at once: the burst (3) passes, the rest are refused
passed=0
for _ in $(seq 10); do echo_ok TCP4:127.0.0.1:$pr && passed=$((passed + 1)); done
[ "$passed" -ge 3 ] && [ "$passed" -le 5 ] || fail "rate_limit: $passed of 10 passed (want 3, or 4-5 if refills came in)"
# each refusal's access log line comes as its connection ends, maybe after echo_ok did
denied_lines() { log_count "route=limited client=127.0.0.1:[0-9]* end=denied stage=rate_limit"; }
wait_until 30 eval '[ $(($(denied_lines) + passed)) = 10 ]' ||
	fail "rate_limit: $passed passed + $(denied_lines) denied != 10"
sleep 1.2 # 2 tokens per second come back
echo_ok TCP4:127.0.0.1:$pr || fail "rate_limit: still refused after the bucket refilled"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: filters (acl allow/deny/IPv6, rate_limit burst $passed/10 and refill)"
