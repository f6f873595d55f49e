#!/bin/bash
# listener_drain.sh - a listener taken away while connections are open drains them, it
# does not cut them: `spargioctl drain` and a reload that removes the listener both stop
# new connections at once, while the open ones keep echoing, end when their clients
# end them (end=closed in the access log), and the daemon goes on serving the rest.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_checks.sh"

pa=$(free_port) pb=$(free_port) pc=$(free_port)
write_conf() { # the listeners: lines for a, b and c as wanted
	cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
$*
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
}
la="  - {name: a, bind: \"127.0.0.1:$pa\", route: echo}"
lb="  - {name: b, bind: \"127.0.0.1:$pb\", route: echo}"
lc="  - {name: c, bind: \"127.0.0.1:$pc\", route: echo}"
write_conf "$la
$lb
$lc"
start_daemon "$tmp/conf.yaml"
refuses() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# spargioctl drain a: a's open connection goes on and ends as its client ends it
hold_echo ca TCP4:127.0.0.1:$pa || fail "a: no echo"
out=$("$ctl" -s "$tmp/control.sock" --json drain a) || fail "drain a: $out"
[ "$(jget "$out" 'j["state"]')" = draining ] || fail "drain answer: $out"
wait_until 30 refuses $pa || fail "drained listener a still accepts"
for i in 1 2 3; do held_echo ca "after drain $i" || fail "a's open connection stopped echoing after the drain"; done
[ "$(status_field connections)" = 1 ] || fail "connections $(status_field connections) with a's connection open"
release ca || fail "a's client did not end"
wait_until 30 log_has "access listener=a route=echo client=127.0.0.1:[0-9]* .* in=$((9 + 3 * 14)) out=$((9 + 3 * 14)) end=closed" ||
	fail "a's drained connection did not end cleanly with every byte"
echo_ok TCP4:127.0.0.1:$pc || fail "c stopped serving while a drained"

# a reload without b: b's open connection goes on likewise
hold_echo cb TCP4:127.0.0.1:$pb || fail "b: no echo"
write_conf "$la
$lc"
reload_and_wait
log_has "reload: generation 2 running" || fail "the reload without b was not applied"
wait_until 30 refuses $pb || fail "removed listener b still accepts"
for i in 1 2 3; do held_echo cb "after reload $i" || fail "b's open connection was cut by its removal"; done
release cb || fail "b's client did not end"
wait_until 30 log_has "access listener=b route=echo client=127.0.0.1:[0-9]* .* in=$((9 + 3 * 15)) out=$((9 + 3 * 15)) end=closed" ||
	fail "b's connection did not end cleanly with every byte"
echo_ok TCP4:127.0.0.1:$pc || fail "c after the reload"
wait_until 30 eval '[ "$(status_field connections)" = 0 ]' || fail "connections $(status_field connections) at the end"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: listener drain (spargioctl drain and a reload's removal: no new connections, the open ones echo on and end cleanly)"
