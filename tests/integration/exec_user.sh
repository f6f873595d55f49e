#!/bin/bash
# exec_user.sh - `user` and `group` (needs root: skipped otherwise): the child runs with
# the user's ids, groups and environment, the working directory is entered as that user;
# a daemon that dropped its own privileges cannot switch users: spawns fail with the
# reason logged and a reload asking for it is rejected.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: exec_user needs root"
	exit 77
fi
getent passwd nobody >/dev/null || { echo "SKIP: no user nobody"; exit 77; }
nobody_uid=$(id -u nobody)
nobody_gid=$(id -g nobody)
daemon_gid=$(getent group daemon | cut -d: -f3)
[ -n "$daemon_gid" ] || { echo "SKIP: no group daemon"; exit 77; }

p_user=$(free_port) p_group=$(free_port) p_both=$(free_port) p_env=$(free_port)
p_cwd=$(free_port)
chmod 700 "$tmp"
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$tmp/control.sock"}
engine: {shards: 2}
listeners:
  - {name: user, bind: "127.0.0.1:$p_user", route: user}
  - {name: group, bind: "127.0.0.1:$p_group", route: group}
  - {name: both, bind: "127.0.0.1:$p_both", route: both}
  - {name: env, bind: "127.0.0.1:$p_env", route: env}
  - {name: cwd, bind: "127.0.0.1:$p_cwd", route: cwd}
routes:
  - {name: user, pipeline: [{exec: {command: [/usr/bin/id], user: nobody}}]}
  - {name: group, pipeline: [{exec: {command: [/usr/bin/id], group: daemon}}]}
  - {name: both, pipeline: [{exec: {command: [/usr/bin/id], user: nobody, group: daemon}}]}
  - {name: env, pipeline: [{exec: {command: [/usr/bin/env], user: nobody}}]}
  - {name: cwd, pipeline: [{exec: {command: [/bin/pwd], user: nobody, working_dir: "$tmp"}}]}
CONF
start_daemon "$tmp/conf.yaml"
ask() { timeout 5 socat -t 3 - TCP4:127.0.0.1:"$1" </dev/null; }

out=$(ask $p_user)
grep -q "^uid=$nobody_uid(nobody) gid=$nobody_gid(" <<<"$out" || fail "user: $out"
grep -qE "groups=$nobody_gid\([a-z]*\)$" <<<"$out" || fail "user kept root's groups: $out"
out=$(ask $p_group)
grep -qE "^uid=0\(root\) gid=$daemon_gid\(daemon\) groups=$daemon_gid\(daemon\)$" <<<"$out" || fail "group: $out"
out=$(ask $p_both)
grep -q "^uid=$nobody_uid(nobody) gid=$daemon_gid(daemon)" <<<"$out" || fail "user and group: $out"
out=$(ask $p_env)
for want in USER=nobody LOGNAME=nobody "HOME=$(getent passwd nobody | cut -d: -f6)"; do
	grep -qx -- "$want" <<<"$out" || fail "the user's environment lacks '$want': $out"
done
# $tmp is root's alone: nobody cannot enter it, so the child fails before exec (under
# ThreadSanitizer, vfork is a fork and the reason is not reported: exit 127 only)
tsan=$(grep -c -- '-fsanitize=thread' "${BUILDDIR:-.}/Makefile" 2>/dev/null)
[ "$tsan" = 0 ] || skip_part "the reason a child failed before exec is not logged under TSan (vfork is a fork)"
out=$(ask $p_cwd)
[ -z "$out" ] || fail "working_dir entered as root: '$out'"
[ "$tsan" != 0 ] || wait_until 30 log_has "exec route cwd: cannot start /bin/pwd: chdir: Permission denied" ||
	fail "no log line for the chdir refused to nobody"
wait_until 30 log_has "route=cwd .*exit=127" || fail "no exit 127 for the chdir refused to nobody"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"

# A daemon that dropped to nobody itself cannot switch users any more.
chmod 755 "$tmp"
cat >"$tmp/conf2.yaml" <<CONF
version: 1
control: {socket: "$tmp/control2.sock"}
process: {user: nobody}
listeners:
  - {name: user, bind: "127.0.0.1:$p_user", route: user}
routes:
  - {name: user, pipeline: [{exec: {command: [/usr/bin/id], user: daemon}}]}
CONF
chmod 644 "$tmp/conf2.yaml"
log=$tmp/log2 # a log of its own: start_daemon waits for its start-up line
start_daemon "$tmp/conf2.yaml"
out=$(ask $p_user)
[ -z "$out" ] || fail "a dropped daemon switched users: $out"
[ "$tsan" != 0 ] || wait_until 30 log_has "exec route user: cannot start /usr/bin/id: setgroups: Operation not permitted" ||
	fail "no log line for the refused switch"
wait_until 30 log_has "route=user .*exit=127" || fail "no exit 127 for the refused switch"
reload_and_wait
log_wait 30 "cannot run commands as daemon: spargiod runs as uid $nobody_uid without the privilege to change users" ||
	fail "the reload was not rejected for the user switch"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: exec user drop (user, group, both, environment, chdir as the user, refused without privilege)"
