#!/bin/bash
# idle_cpu.sh - the shipped defaults do not busy-poll: spargiod on the demo config
# (conf/demo.yaml: every handler, 2 shards, idle_spin_us left at its default), served a
# few requests and then left alone for 10 s, uses under 1% of a core (utime + stime
# from /proc/PID/stat, before and after the quiet spell).
. "$(dirname "$0")/lib.sh"
src=${srcdir:-.}

# the demo's ports and control socket, moved to free ports and our temporary directory
sed_args=(-e "s|^  socket: .*|  socket: $tmp/control.sock|")
for p in 7000 7001 7002 7003 7004 7005; do
	sed_args+=(-e "s/127.0.0.1:$p\"/127.0.0.1:$(free_port)\"/")
done
sed "${sed_args[@]}" "$src/conf/demo.yaml" >"$tmp/conf.yaml"
grep -q idle_spin_us "$tmp/conf.yaml" && fail "the demo sets idle_spin_us: this test is about the default"
start_daemon "$tmp/conf.yaml"

echo_port=$(sed -n 's/.*name: echo, bind: "127.0.0.1:\([0-9]*\)".*/\1/p' "$tmp/conf.yaml")
proxy_port=$(sed -n 's/.*name: proxy, bind: "127.0.0.1:\([0-9]*\)".*/\1/p' "$tmp/conf.yaml")
for i in 1 2 3; do
	echo_ok TCP4:127.0.0.1:$echo_port || fail "echo $i"
	echo_ok TCP4:127.0.0.1:$proxy_port || fail "proxy $i"
done
sleep 1 # let the last sessions end

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' /proc/"$pid"/stat; }
t0=$(ticks); s0=$(date +%s%N)
sleep 10
t1=$(ticks); s1=$(date +%s%N)
used=$((t1 - t0)) # clock ticks of CPU time over the quiet spell
wall_ticks=$(((s1 - s0) * hz / 1000000000))
# under 1% of one core
[ $((used * 100)) -lt "$wall_ticks" ] ||
	fail "idle daemon used $used ticks of CPU in $wall_ticks ticks of wall time (>= 1% of a core)"
kill -0 "$pid" || fail "daemon died"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: idle demo daemon used $used of $wall_ticks clock ticks (< 1% of a core)"
