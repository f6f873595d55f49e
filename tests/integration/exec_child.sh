#!/bin/bash
# exec_child.sh - what an exec child gets from the daemon: no blocked and no ignored
# signal (the daemon blocks some for its signalfd and ignores SIGPIPE), the soft
# RLIMIT_NOFILE the daemon started with, or the configured limits, a session and process
# group of its own, and its working directory.
. "$(dirname "$0")/lib.sh"

p_sig=$(free_port) p_lim=$(free_port) p_nolim=$(free_port) p_ids=$(free_port)
p_cwd=$(free_port) p_root=$(free_port)
mkdir "$tmp/work"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: sig, bind: "127.0.0.1:$p_sig", route: sig}
  - {name: lim, bind: "127.0.0.1:$p_lim", route: lim}
  - {name: nolim, bind: "127.0.0.1:$p_nolim", route: nolim}
  - {name: ids, bind: "127.0.0.1:$p_ids", route: ids}
  - {name: cwd, bind: "127.0.0.1:$p_cwd", route: cwd}
  - {name: root, bind: "127.0.0.1:$p_root", route: root}
routes:
  - {name: sig, pipeline: [{exec: {command: [/bin/grep, -E, '^Sig(Blk|Ign)', /proc/self/status]}}]}
  - name: lim
    pipeline:
      - exec: {command: [/bin/cat, /proc/self/limits], limits: {nofile: 100, as: 1GiB, cpu: 7s}}
  - {name: nolim, pipeline: [{exec: {command: [/bin/cat, /proc/self/limits], stdio: pipe}}]}
  - {name: ids, pipeline: [{exec: {command: [/bin/sh, -c, 'echo \$\$; cut -d" " -f5,6 /proc/\$\$/stat']}}]}
  - {name: cwd, pipeline: [{exec: {command: [/bin/pwd], working_dir: "$tmp/work"}}]}
  - {name: root, pipeline: [{exec: {command: [/bin/pwd]}}]}
CONF
# The daemon starts with a soft limit of 777 descriptors: children get that back, whatever
# the daemon does with its own.
ulimit -Sn 777
start_daemon "$tmp/conf.yaml"
ask() { timeout 5 socat -t 3 - TCP4:127.0.0.1:"$1" </dev/null; }

out=$(ask $p_sig)
grep -qx $'SigBlk:\t0000000000000000' <<<"$out" || fail "the child starts with blocked signals: $out"
grep -qx $'SigIgn:\t0000000000000000' <<<"$out" || fail "the child starts with ignored signals: $out"

out=$(ask $p_lim)
grep -qE '^Max open files +100 +100 ' <<<"$out" || fail "limits.nofile: $(grep 'open files' <<<"$out")"
grep -qE '^Max address space +1073741824 +1073741824 ' <<<"$out" || fail "limits.as: $(grep 'address' <<<"$out")"
grep -qE '^Max cpu time +7 +8 ' <<<"$out" || fail "limits.cpu: $(grep 'cpu' <<<"$out")"
out=$(ask $p_nolim)
grep -qE '^Max open files +777 ' <<<"$out" || fail "the soft nofile limit was not restored: $(grep 'open files' <<<"$out")"

out=$(ask $p_ids)
read -r child <<<"$out"
[ "$(sed -n 2p <<<"$out")" = "$child $child" ] ||
	fail "the child (pid $child) is not the leader of its process group and session: $out"

[ "$(ask $p_cwd)" = "$tmp/work" ] || fail "working_dir not applied"
[ "$(ask $p_root)" = / ] || fail "the default working directory is not /"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: exec children (signals reset, rlimits, nofile restored, own session, working_dir)"
