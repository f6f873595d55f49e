#!/bin/bash
# accept_spread.sh - connections spread over every shard: 4 shards (on however few
# cores), 4,000 connections from 8 concurrent clients on each listener, and each shard
# starts between 15% and 35% of them (tasks_spawned of `spargioctl shards`: a session is
# spawned on the shard that took its connection), for a TCP listener of each placement
# that serves where it accepts (pinned, stealable, the default) - an SO_REUSEPORT group
# of one socket per shard - and for a unix listener (one socket, accepted on one shard
# and handed to the shards in turn). Then the same through a socket passed by systemd
# (one inherited socket, handed off likewise).
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl
N=4000

p_pin=$(free_port); p_steal=$(free_port); p_def=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 4}
log: {access_log: false}
listeners:
  - {name: pinned, bind: "127.0.0.1:$p_pin", route: pinned}
  - {name: stealable, bind: "127.0.0.1:$p_steal", route: stealable}
  - {name: default, bind: "127.0.0.1:$p_def", route: default}
  - {name: unix, bind: "unix:$tmp/echo.sock", route: default}
routes:
  - {name: pinned, placement: pinned, pipeline: [{echo: {}}]}
  - {name: stealable, placement: stealable, pipeline: [{echo: {}}]}
  - {name: default, pipeline: [{echo: {}}]}
CONF

# spawned: tasks_spawned per shard, space-separated
spawned() {
	"$ctl" -s "$tmp/control.sock" --json shards |
		python3 -c 'import json, sys; print(" ".join(str(s["tasks_spawned"]) for s in json.load(sys.stdin)["shards"]))'
}

# spread NAME ADDR: N connections to ADDR; every shard's share within 15%..35%
spread() {
	local name=$1 addr=$2 before after out
	before=$(spawned) || fail "$name: no shards answer"
	out=$("$load" --connect "$addr" --conns $N --concurrency 8 --max-seconds 60) ||
		fail "$name: load: $out"
	after=$(spawned)
	python3 - "$name" $N "$before" "$after" <<'PY' || fail "$name: connections not spread (see above)"
import sys
name, n = sys.argv[1], int(sys.argv[2])
b = [int(x) for x in sys.argv[3].split()]
a = [int(x) for x in sys.argv[4].split()]
d = [y - x for x, y in zip(b, a)]
share = [100.0 * x / n for x in d]
print(f"{name}: per shard {d} ({', '.join(f'{s:.1f}%' for s in share)})")
ok = sum(d) == n and all(15.0 <= s <= 35.0 for s in share)
sys.exit(0 if ok else 1)
PY
	shares+="$name ok; "
}

shares=
start_daemon "$tmp/conf.yaml"
spread pinned "127.0.0.1:$p_pin"
spread stealable "127.0.0.1:$p_steal"
spread default "127.0.0.1:$p_def"
spread unix "unix:$tmp/echo.sock"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"

# socket activation: one socket passed by systemd
if command -v systemd-socket-activate >/dev/null; then
	port=$(free_port)
	sed -e "s|bind: \"127.0.0.1:$p_def\"|bind: \"systemd:web\"|" -e '/name: pinned,/d' \
		-e '/name: stealable,/d' -e '/name: unix,/d' "$tmp/conf.yaml" >"$tmp/sd.yaml"
	systemd-socket-activate -l 127.0.0.1:$port --fdname=web "$bin" -c "$tmp/sd.yaml" \
		>>"$log" 2>&1 &
	pid=$!
	started_pids+=("$pid")
	wait_until 10 echo_ok TCP4:127.0.0.1:$port || fail "no echo through the activated socket"
	wait_until 5 test -S "$tmp/control.sock" || fail "no control socket"
	spread systemd "127.0.0.1:$port"
	stop_daemon TERM
	[ "$rc" = 0 ] || fail "systemd: exit status $rc"
else
	skip_part "socket activation: no systemd-socket-activate"
fi
echo "PASS: connections spread over 4 shards ($shares)"
