#!/bin/bash
# pin_cpus.sh - engine.pin_cpus: each shard thread (sp-shard-N) may run on one CPU only,
# shard N on the Nth CPU this process may use (in turn when shards outnumber them), read
# from /proc/PID/task/*/status; without it, the shards keep the whole set.
. "$(dirname "$0")/lib.sh"

allowed=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)
cpus=$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))')
port=$(free_port)
write_conf() {
	cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 3, pin_cpus: $1}
listeners:
  - {name: a, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
}
# shard_cpus: "N LIST" per shard thread
shard_cpus() {
	local t
	for t in /proc/"$pid"/task/*; do
		[[ "$(cat "$t/comm")" == sp-shard-* ]] &&
			echo "$(cut -d- -f3 <"$t/comm") $(awk '/^Cpus_allowed_list/ {print $2}' "$t/status")"
	done | sort -n
}

write_conf true
start_daemon "$tmp/conf.yaml"
echo_ok TCP4:127.0.0.1:$port || fail "no echo with pin_cpus"
got=$(shard_cpus)
[ "$(wc -l <<<"$got")" = 3 ] || fail "not 3 shard threads: $got"
read -ra set <<<"$cpus"
want=$(for i in 0 1 2; do echo "$i ${set[i % ${#set[@]}]}"; done)
[ "$got" = "$want" ] || fail "shards pinned as '$(echo $got)', want '$(echo $want)' (this process may use $allowed)"
log_has "cannot pin shard" && fail "a shard could not be pinned"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"

: >"$log"
write_conf false
start_daemon "$tmp/conf.yaml"
got=$(shard_cpus)
want=$(for i in 0 1 2; do echo "$i $allowed"; done)
[ "$got" = "$want" ] || fail "pin_cpus false: shards on '$(echo $got)', want each on $allowed"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
# Started with a narrower CPU set (taskset to the last CPU), the shards stay within it.
narrow="not checked (one CPU allowed)"
[ "${#set[@]}" -ge 2 ] || skip_part "a narrower CPU set: one CPU allowed here"
if [ "${#set[@]}" -ge 2 ]; then
	last=${set[-1]}
	: >"$log"
	write_conf true
	bin_saved=$bin
	printf '#!/bin/sh\nexec taskset -c %s "%s" "$@"\n' "$last" "$real_bin" >"$tmp/narrow"
	chmod +x "$tmp/narrow"
	bin=$tmp/narrow
	start_daemon "$tmp/conf.yaml"
	bin=$bin_saved
	got=$(shard_cpus)
	want=$(for i in 0 1 2; do echo "$i $last"; done)
	[ "$got" = "$want" ] || fail "under taskset -c $last: shards pinned as '$(echo $got)', want all on $last"
	stop_daemon TERM
	[ "$rc" = 0 ] || fail "exit status $rc"
	narrow="within taskset -c $last"
fi
echo "PASS: pin_cpus (3 shards pinned one CPU each over $allowed; unpinned without it; narrower set: $narrow)"
