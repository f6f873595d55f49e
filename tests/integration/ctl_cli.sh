#!/bin/bash
# ctl_cli.sh - spargioctl as a Unix tool: the bash completion offers the live daemon's
# listeners, routes, upstreams and servers (at the -s socket on the line, and again after
# a reload adds one); `watch -n 2` prints two frames whose rates follow real traffic;
# watch ends with 0 on SIGINT (also on a terminal, under tmux) and 2 when the daemon goes
# away; errors say what to do, with the exit statuses of spargioctl(8); -V says how
# spargiod was built.
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl
completion=$(dirname "$0")/../../completion/spargioctl
sock=$tmp/control.sock
PATH=${BUILDDIR:-.}:$PATH # the completion runs `spargioctl --names` as typed

pw=$(free_port); pf=$(free_port); pu1=$(free_port); pu2=$(free_port)
write_conf() { # write_conf [EXTRA-LISTENER-LINE]
	cat >"$tmp/conf.yaml" <<CONF
version: 1
engine: {shards: 2}
control: {socket: "$sock"}
log: {access_log: false}
upstreams:
  - name: app
    servers:
      - {address: "127.0.0.1:$pu1"}
      - {address: "127.0.0.1:$pu2"}
listeners:
  - {name: web, bind: "127.0.0.1:$pw", route: echo}
  - {name: front, bind: "127.0.0.1:$pf", route: px}
${1:-}
routes:
  - {name: echo, pipeline: [{echo: {}}]}
  - {name: px, pipeline: [{proxy: {upstream: app}}]}
CONF
}
write_conf
start_daemon "$tmp/conf.yaml"

# comp LINE: what bash completion offers for the last word of LINE, sorted, one a line
# shellcheck source=/dev/null
source "$completion" || fail "cannot source $completion"
comp() {
	local COMP_LINE=$1 COMP_POINT=${#1} COMP_WORDS COMP_CWORD COMPREPLY=()
	read -ra COMP_WORDS <<<"$1"
	[[ $1 == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	_spargioctl spargioctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' '
}
want_comp() { # want_comp LINE WANT
	local got want
	got=$(comp "$1")
	want=$(tr ' ' '\n' <<<"$2" | sort | paste -sd' ')
	[ "$got" = "$want" ] || fail "completing '$1': '$got', want '$want'"
}
c="spargioctl -s $sock"
want_comp "spargioctl wa" "watch"
want_comp "spargioctl d" "drain"
want_comp "spargioctl --" "--help --json --names --socket --timeout"
want_comp "$c drain " "front web"
want_comp "$c drain w" "web"
want_comp "$c routes " "echo px"
want_comp "$c listeners " "front web"
want_comp "$c server " "disable enable"
want_comp "$c server disable " "app"
want_comp "$c server enable app " "127.0.0.1:$pu1 127.0.0.1:$pu2"
want_comp "$c --names " "listeners routes servers upstreams"
want_comp "$c --names servers " "app"
want_comp "$c watch -" "-i -n"
# the socket on the line, not the default: another socket offers nothing, quickly
SECONDS=0
want_comp "spargioctl -s $tmp/none.sock drain " ""
[ "$SECONDS" -le 3 ] || fail "completion with no daemon took $SECONDS s"
# live names: a listener added by a reload is offered at once
pn=$(free_port)
write_conf "  - {name: late, bind: \"127.0.0.1:$pn\", route: echo}"
"$ctl" -s "$sock" reload >/dev/null || fail "reload"
want_comp "$c drain " "front late web"
[ "$("$ctl" -s "$sock" --names servers app | paste -sd' ')" = "127.0.0.1:$pu1 127.0.0.1:$pu2" ] ||
	fail "--names servers app: $("$ctl" -s "$sock" --names servers app)"

# listeners/routes/upstreams NAME...: those rows only; a name that matches none exits 1
out=$("$ctl" -s "$sock" routes px) || fail "routes px"
grep -q '^  px ' <<<"$out" && ! grep -q '^  echo ' <<<"$out" || fail "routes px: $out"
out=$("$ctl" -s "$sock" listeners nope 2>&1)
rc=$?
[ "$rc" = 1 ] && grep -q 'no listener named nope' <<<"$out" || fail "listeners nope: rc $rc: $out"

# watch -n 2, not on a terminal: two frames, the second with the traffic sent between
"$ctl" -s "$sock" watch -n 2 -i 2 >"$tmp/watch.out" 2>&1 &
wpid=$!
started_pids+=("$wpid")
wait_until 30 grep -q '^SHARD' "$tmp/watch.out" || fail "no first frame: $(cat "$tmp/watch.out")"
"$load" --connect 127.0.0.1:$pw --conns 40 --concurrency 4 --size 100 >/dev/null || fail "load"
wait_until 30 eval '! kill -0 '"$wpid"' 2>/dev/null' || fail "watch -n 2 still running"
wait "$wpid"
rc=$?
[ "$rc" = 0 ] || fail "watch -n 2 exit $rc: $(cat "$tmp/watch.out")"
[ "$(grep -c '^spargiod 0' "$tmp/watch.out")" = 2 ] || fail "watch -n 2 frames: $(cat "$tmp/watch.out")"
# web's row in each frame: NAME BIND ACTIVE ACCEPTED CONN/S REFUSED
mapfile -t rows < <(grep '^web ' "$tmp/watch.out")
read -r _ _ _ acc1 _ _ <<<"${rows[0]}"
read -r _ _ _ acc2 rate2 _ <<<"${rows[1]}"
[ "$acc1" = 0 ] && [ "$acc2" = 40 ] || fail "watch accepted: ${rows[*]}"
[ "$rate2" != 0 ] || fail "watch shows no connection rate after 40 connections: ${rows[1]}"
grep -q "^app  *127.0.0.1:$pu1  *up " "$tmp/watch.out" || fail "watch upstream rows: $(cat "$tmp/watch.out")"
grep -q '^ROUTE ' "$tmp/watch.out" && grep -q '^echo ' "$tmp/watch.out" || fail "watch routes"

# watch until interrupted: SIGINT ends it with 0
"$ctl" -s "$sock" watch -i 0.2 >"$tmp/watch2.out" 2>&1 &
wpid=$!
started_pids+=("$wpid")
wait_until 30 eval '[ "$(grep -c "^SHARD" "$tmp/watch2.out")" -ge 2 ]' || fail "watch shows no frames"
kill -INT "$wpid"
wait_until 10 eval '! kill -0 '"$wpid"' 2>/dev/null' || fail "watch ignores SIGINT"
wait "$wpid"
rc=$?
[ "$rc" = 0 ] || fail "watch after SIGINT: exit $rc"

# on a terminal: redrawn in place (the screen shows one frame), Ctrl-C exits 0
if command -v tmux >/dev/null; then
	tm=(tmux -S "$tmp/tmux.sock" -f /dev/null)
	"${tm[@]}" new-session -d -x 120 -y 50 \
		"'$ctl' -s '$sock' watch; echo \"rc=\$?\" >'$tmp/tmux.rc'; sleep 30"
	tmux_pid=$("${tm[@]}" display-message -p '#{pid}')
	started_pids+=("$tmux_pid")
	wait_until 30 eval '"${tm[@]}" capture-pane -p | grep -q "^SHARD"' || fail "no frame under tmux"
	sleep 1.5 # a redraw or two
	screen=$("${tm[@]}" capture-pane -p -S -100)
	[ "$(grep -c '^LISTENER' <<<"$screen")" = 1 ] || fail "watch on a terminal is not redrawn in place: $screen"
	"${tm[@]}" send-keys C-c
	wait_until 10 test -s "$tmp/tmux.rc" || fail "Ctrl-C did not end watch under tmux"
	[ "$(cat "$tmp/tmux.rc")" = rc=0 ] || fail "watch after Ctrl-C: $(cat "$tmp/tmux.rc")"
	"${tm[@]}" kill-server 2>/dev/null
else
	skip_part "no tmux: watch on a terminal not checked"
fi

# errors that say what to do, and their exit statuses
want_err() { # want_err RC MESSAGE ARGS...
	local rc=$1 msg=$2 out got
	shift 2
	out=$("$ctl" "$@" 2>&1 >/dev/null)
	got=$?
	[ "$got" = "$rc" ] && [ "$out" = "$msg" ] || fail "spargioctl $*: exit $got, '$out'; want $rc, '$msg'"
}
want_err 2 "spargioctl: no daemon at $tmp/none.sock: is spargiod running? (-s to give another socket)" \
	-s "$tmp/none.sock" status
: >"$tmp/file"
want_err 2 "spargioctl: no daemon at $tmp/file: is spargiod running? (-s to give another socket)" \
	-s "$tmp/file" status
want_err 2 "spargioctl: no command (try --help)" -s "$sock"
want_err 2 "spargioctl: -T wants seconds, 1 to 86400" -T 0 -s "$sock" status
want_err 2 "spargioctl: watch -n wants a count of frames, 1 or more" -s "$sock" watch -n 0
want_err 1 "spargioctl: unknown command 'frobnicate'" -s "$sock" frobnicate
SPARGIOD_CONTROL=$tmp/env.sock want_err 2 \
	"spargioctl: no daemon at $tmp/env.sock: is spargiod running? (-s to give another socket)" status
"$ctl" -s "$sock" status >/dev/null || fail "status: exit $?"

# watch ends with 2, saying so, when the daemon goes away
"$ctl" -s "$sock" watch -i 0.2 >/dev/null 2>"$tmp/watch3.err" &
wpid=$!
started_pids+=("$wpid")
sleep 0.5
stop_daemon TERM
wait_until 10 eval '! kill -0 '"$wpid"' 2>/dev/null' || fail "watch outlives the daemon"
wait "$wpid"
rc=$?
# (or, caught while it drains, a hang-up)
[ "$rc" = 2 ] && grep -q "no daemon at $sock\|spargiod at $sock hung up without answering" "$tmp/watch3.err" ||
	fail "watch after the daemon stopped: exit $rc, $(cat "$tmp/watch3.err")"

# -V: the build, not only the kernel's features
v=$("$bin" -V) || fail "-V"
grep -q '^build: sanitizers=\(none\|asan+ubsan\|tsan\) werror=' <<<"$v" &&
	grep -q '^libraries: liburing [0-9]' <<<"$v" && grep -q '^kernel: Linux ' <<<"$v" ||
	fail "-V: $v"
echo "PASS: spargioctl completion from the live daemon, watch frames and rates, SIGINT and Ctrl-C, errors and exit statuses, -V"
