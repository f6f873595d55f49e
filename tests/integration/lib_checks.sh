# shellcheck shell=bash
# lib_checks.sh - sourced after lib.sh by tests that read the control socket or hold
# connections open: JSON fields of spargioctl's answers, and held echo connections.
ctl=${BUILDDIR:-.}/spargioctl

# jget JSON PYTHON-EXPR: evaluate EXPR on the parsed answer j
jget() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

# status_field NAME: that field of `spargioctl --json status` (the control socket at
# $tmp/control.sock)
status_field() {
	local st
	st=$("$ctl" -s "$tmp/control.sock" --json status) || return 1
	jget "$st" "j[\"$1\"]"
}

# hold_echo NAME SOCAT-ADDRESS: open a connection kept in coprocess-like fds
# ${NAME}_in/${NAME}_out (a FIFO pair), with one line echoed through it first.
# held_echo NAME LINE: that line comes back on it. release NAME: close it (EOF to the
# daemon) and wait for the client to end.
hold_echo() {
	local name=$1 addr=$2
	mkfifo "$tmp/$name.in" "$tmp/$name.out"
	socat - "$addr" <"$tmp/$name.in" >"$tmp/$name.out" &
	started_pids+=("$!")
	eval "${name}_pid=$!"
	exec {fd_in}>"$tmp/$name.in" {fd_out}<"$tmp/$name.out"
	eval "${name}_in=$fd_in ${name}_out=$fd_out"
	held_echo "$name" "hello $name"
}
held_echo() {
	local fin fout line
	fin=$(eval echo "\$${1}_in") fout=$(eval echo "\$${1}_out")
	echo "$2" >&"$fin"
	read -r -t 30 line <&"$fout" && [ "$line" = "$2" ]
}
release() {
	local fin p
	fin=$(eval echo "\$${1}_in") p=$(eval echo "\$${1}_pid")
	exec {fin}>&-
	timeout 30 tail --pid="$p" -f /dev/null
}
