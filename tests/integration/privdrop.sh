#!/bin/bash
# privdrop.sh - process.user: started as root, spargiod binds (a port below 1024 too),
# then every thread runs as that user and group with no supplementary groups of root's;
# connections and reloads of unchanged listeners keep working. A user that does not
# exist stops the start with status 3.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
getent passwd nobody >/dev/null || { echo "SKIP: no user nobody"; exit 77; }

low=$((700 + RANDOM % 200)) # a privileged port: only root binds it
while (exec 3<>"/dev/tcp/127.0.0.1/$low") 2>/dev/null; do low=$((low + 1)); done
port=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
engine: {shards: 2}
control: {socket: "$tmp/control.sock"}
process: {user: nobody}
listeners:
  - {name: low, bind: "127.0.0.1:$low", route: echo}
  - {name: high, bind: "127.0.0.1:$port", route: echo}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
CONF
chmod 755 "$tmp"; chmod 644 "$tmp/conf.yaml" # reloads read it as nobody
start_daemon "$tmp/conf.yaml"
log_wait 30 "running as user nobody" || fail "no privilege-drop line"
nobody_uid=$(id -u nobody)
for status in /proc/$pid/task/*/status; do
	uids=$(awk '/^Uid:/{print $2, $3, $4, $5}' "$status")
	[ "$uids" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" ] || fail "thread $status has uids $uids"
	groups=$(awk '/^Groups:/{$1=""; print}' "$status" | tr -s ' ')
	grep -qw 0 <<<"$groups" && fail "thread $status kept group 0: $groups"
done
echo_ok TCP4:127.0.0.1:$low || fail "echo on the privileged port"
echo_ok TCP4:127.0.0.1:$port || fail "echo"
reload_and_wait
log_wait 30 "reload: generation 2 running" || fail "reload after the drop"
echo_ok TCP4:127.0.0.1:$low || fail "the privileged port after a reload"
stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"

sed -i 's/user: nobody/user: no-such-user-here/' "$tmp/conf.yaml"
out=$(timeout 10 "$bin" -c "$tmp/conf.yaml" 2>&1); rc=$?
[ "$rc" = 3 ] && grep -q "no user 'no-such-user-here'" <<<"$out" || fail "unknown user: exit $rc: $out"
echo "PASS: privilege drop (every thread nobody after binding port $low, reload kept it, unknown user refused)"
