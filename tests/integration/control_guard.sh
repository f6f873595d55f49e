#!/bin/bash
# control_guard.sh - the control socket cannot be held, flooded or squatted:
#  - idle clients (nothing, or half a command) are closed after 10 s;
#  - 64 idle clients of one allowed uid do not lock out root or that uid itself;
#  - 2000 refused connects give one warning and one "N more refused" summary, N exact;
#  - a socket of another user at the path (live or dead), a directory of another user
#    or one writable by all (not sticky) stop the start with a message naming the owner;
#  - spargioctl refuses a squatter's socket before sending anything, trusts the owner of
#    a private directory, and gives up in seconds on a full backlog or a silent daemon.
# Root only (other users are made with setpriv).
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (acts as nobody with setpriv)"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: no setpriv"; exit 77; }
nobody_gid=$(id -g nobody)
# the system's python: a python3 of root's (pyenv) may be out of other users' reach
py=/usr/bin/python3
[ -x "$py" ] || { echo "SKIP: no $py"; exit 77; }
as_nobody() { setpriv --reuid=nobody --regid="$nobody_gid" --clear-groups "$@"; }
as_nobody_in_root_group() { setpriv --reuid=nobody --regid="$nobody_gid" --groups=0 "$@"; }
chmod 711 "$tmp" # others may pass through to the directories made for them below

# hold N PATH SECONDS [PARTIAL]: N clients connect and sit (sending PARTIAL, no newline);
# prints "ready" once all are connected, then how many the daemon closed by SECONDS.
hold=$tmp/hold.py
cat >"$hold" <<'PY'
import socket, sys, time
n, path, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
partial = sys.argv[4].encode() if len(sys.argv) > 4 else b""
ss = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    if partial:
        s.send(partial)
    ss.append(s)
print("ready", flush=True)
end = time.time() + secs
closed = set()
while time.time() < end and len(closed) < n:
    for i, s in enumerate(ss):
        if i in closed:
            continue
        s.settimeout(0.01)
        try:
            if s.recv(4096) == b"":
                closed.add(i)
        except socket.timeout:
            pass
        except OSError:
            closed.add(i)
print(len(closed), flush=True)
PY

sock=$tmp/control.sock
p=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
control: {socket: "$sock", mode: "0666"}
listeners: [{name: a, bind: "127.0.0.1:$p", route: r}]
routes: [{name: r, pipeline: [echo]}]
CONF
start_daemon "$tmp/conf.yaml"

# idle clients: one silent, one with half a command; both closed after 10 s (not 5)
python3 "$hold" 2 "$sock" 5 sta >"$tmp/idle5" &
started_pids+=("$!")
python3 "$hold" 2 "$sock" 14 sta >"$tmp/idle14" &
started_pids+=("$!")

# 64 idle clients of an allowed uid (nobody, in root's group): root and nobody itself
# are still served, at once
as_nobody_in_root_group $py "$hold" 64 "$sock" 20 >"$tmp/held" &
started_pids+=("$!")
wait_until 10 grep -q ready "$tmp/held" || fail "64 clients did not connect"
t0=$(date +%s%N)
out=$(timeout 10 "$ctl" -s "$sock" --json status) || fail "root's status while 64 clients sit: $out"
grep -q '"ok":true' <<<"$out" || fail "status: $out"
out=$(as_nobody_in_root_group timeout 10 "$ctl" -s "$sock" --json status) ||
	fail "nobody's own status while its 64 clients sit: $out"
ms=$((($(date +%s%N) - t0) / 1000000))
# (before: no answer until the 64 went away; the bound leaves room for a loaded machine)
[ "$ms" -lt 8000 ] || fail "status took $ms ms beside 64 idle clients"

# 2000 refused connects (nobody, not in root's group): one warning, one summary
before=$(log_count "refused a client with uid $(id -u nobody)")
as_nobody $py -c '
import socket, sys
for _ in range(2000):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
    assert b"permission denied" in s.recv(200); s.close()' "$sock" || fail "refused flood"
wait_until 20 grep -q ready "$tmp/idle14" || fail "idle clients"
wait_until 20 eval '[ -s "$tmp/idle14" ] && [ "$(wc -l <"$tmp/idle14")" = 2 ]' || fail "idle clients never ended"
[ "$(sed -n 2p "$tmp/idle5")" = 0 ] || fail "idle clients closed before 5 s: $(cat "$tmp/idle5")"
[ "$(sed -n 2p "$tmp/idle14")" = 2 ] || fail "idle clients not closed within 14 s: $(cat "$tmp/idle14")"
log_wait 30 "control: 1999 more refused from uid $(id -u nobody) in the last 10 s" ||
	fail "no summary of 1999 refusals"
[ "$(log_count "refused a client with uid $(id -u nobody)")" = $((before + 1)) ] ||
	fail "refusals not summed up: $(log_count "refused a client")"
[ "$(log_count "control:")" -lt 10 ] || fail "control lines flood the log"
stop_daemon

# squatting: another user's socket (live or dead) at the path, its directory, or one
# writable by all: the start stops and names the owner; nothing is replaced
mkdir -m 1777 "$tmp/shared"
squat=$tmp/shared/control.sock
as_nobody $py -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
print("ready", flush=True); time.sleep(30)' "$squat" >"$tmp/squatter" &
started_pids+=("$!")
squatter=$!
wait_until 10 grep -q ready "$tmp/squatter" || fail "squatter did not listen"
sed "s|$sock|$squat|" "$tmp/conf.yaml" >"$tmp/squat.yaml"
rc=0; out=$(timeout 10 "$bin" -c "$tmp/squat.yaml" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "start beside a squatter: exit $rc: $out"
grep -q "control.socket '$squat' is a socket of uid $(id -u nobody) (nobody), not of root or of this daemon's user" <<<"$out" ||
	fail "squatter message: $out"
grep -q "another spargiod" <<<"$out" && fail "blames another spargiod: $out"
rc=0; out=$("$bin" -t -c "$tmp/squat.yaml" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -qE "^$tmp/squat.yaml:2:[0-9]+: control.socket '$squat' is a socket of uid $(id -u nobody) \(nobody\)" <<<"$out" ||
	fail "-t beside a squatter: $rc $out"
# root's spargioctl does not talk to it, and sends it nothing
rc=0; out=$(timeout 10 "$ctl" -s "$squat" status 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -q "is served by uid $(id -u nobody) (nobody), not by root, by you or by the owner of its directory" <<<"$out" ||
	fail "spargioctl to a squatter: $rc $out"
kill "$squatter"
wait "$squatter" 2>/dev/null
[ -S "$squat" ] || fail "the dead squat socket is gone"
rc=0; out=$(timeout 10 "$bin" -c "$tmp/squat.yaml" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "is a socket of uid $(id -u nobody)" <<<"$out" || fail "start beside a dead squat socket: $rc $out"
[ "$(stat -c %U "$squat")" = nobody ] || fail "the dead squat socket was replaced"

mkdir -m 755 "$tmp/nobodys" && chown nobody "$tmp/nobodys"
sed "s|$sock|$tmp/nobodys/c.sock|" "$tmp/conf.yaml" >"$tmp/dir.yaml"
mkdir -m 777 "$tmp/open" && chmod 777 "$tmp/open"
sed "s|$sock|$tmp/open/c.sock|" "$tmp/conf.yaml" >"$tmp/open.yaml"
for t in -t ""; do # -t and a start agree, with the position of the path
	rc=0; out=$(timeout 10 "$bin" $t -c "$tmp/dir.yaml" 2>&1) || rc=$?
	[ "$rc" = 1 ] && grep -qE "$tmp/dir.yaml:2:[0-9]+: control.socket $tmp/nobodys/c.sock: its directory $tmp/nobodys belongs to uid $(id -u nobody) \(nobody\)" <<<"$out" ||
		fail "directory of another user ($t): $rc $out"
	rc=0; out=$(timeout 10 "$bin" $t -c "$tmp/open.yaml" 2>&1) || rc=$?
	[ "$rc" = 1 ] && grep -qE "$tmp/open.yaml:2:[0-9]+: control.socket $tmp/open/c.sock: its directory $tmp/open is writable by other users \(mode 0777\)" <<<"$out" ||
		fail "directory writable by all ($t): $rc $out"
done
[ -e "$tmp/nobodys/c.sock" ] || [ -e "$tmp/open/c.sock" ] && fail "a socket was bound in a directory of others"
# a sticky shared one (/tmp-like) is a warning
rc=0; out=$("$bin" -t -c "$tmp/squat.yaml" 2>&1) || rc=$?
grep -qE "$tmp/squat.yaml:2:[0-9]+: warning: control.socket $squat: its directory $tmp/shared is shared \(mode 1777\)" <<<"$out" ||
	fail "no warning for a sticky shared directory: $out"
# a missing directory is made private: search rights only where the mode lets in
sed "s|$sock|$tmp/made/c.sock|; s|0666|0600|" "$tmp/conf.yaml" >"$tmp/made.yaml"
start_daemon "$tmp/made.yaml" # (its start line is in the log already: wait for the socket)
wait_until 10 test -S "$tmp/made/c.sock" || fail "no socket in a made directory"
[ "$(stat -c %a "$tmp/made")" = 700 ] || fail "made directory mode $(stat -c %a "$tmp/made")"
stop_daemon

# spargioctl trusts the owner of a private directory (a daemon run as that user)...
as_nobody $py -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
print("ready", flush=True)
c, _ = s.accept(); c.recv(100); c.send(b"{\"ok\":true,\"pid\":1}\n"); c.close()
s.listen(0); print("full", flush=True)
import time; time.sleep(30)' "$tmp/nobodys/c.sock" >"$tmp/fake" &
started_pids+=("$!")
wait_until 10 grep -q ready "$tmp/fake" || fail "fake daemon did not listen"
out=$(timeout 10 "$ctl" -s "$tmp/nobodys/c.sock" status 2>&1) || fail "owner of a private directory not trusted: $out"
[ "$out" = "pid: 1" ] || fail "fake answer: $out"
# ...and gives up in seconds when the daemon takes no connection or gives no answer
wait_until 10 grep -q full "$tmp/fake" || fail "fake daemon"
for _ in 1 2 3 4; do as_nobody $py -c 'import socket,sys,time
s=socket.socket(socket.AF_UNIX); s.setblocking(False)
try: s.connect(sys.argv[1])
except OSError: pass
time.sleep(20)' "$tmp/nobodys/c.sock" & started_pids+=("$!"); done
sleep 0.5
t0=$(date +%s)
rc=0; out=$(timeout 30 "$ctl" -s "$tmp/nobodys/c.sock" -T 2 status 2>&1) || rc=$?
[ "$rc" = 2 ] && [ $(($(date +%s) - t0)) -le 4 ] || fail "full backlog: exit $rc after $(($(date +%s) - t0)) s: $out"
grep -qE "accepts no connection|no answer" <<<"$out" || fail "full backlog message: $out"
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
c, _ = s.accept(); time.sleep(30)' "$tmp/silent.sock" &
started_pids+=("$!")
wait_until 10 test -S "$tmp/silent.sock" || fail "silent daemon"
t0=$(date +%s)
rc=0; out=$(timeout 30 "$ctl" -s "$tmp/silent.sock" status 2>&1) || rc=$?
took=$(($(date +%s) - t0))
[ "$rc" = 2 ] && [ "$took" -ge 4 ] && [ "$took" -le 7 ] || fail "silent daemon: exit $rc after $took s: $out"
grep -q "no answer from spargiod at $tmp/silent.sock within 5 s" <<<"$out" || fail "silent daemon message: $out"
echo "PASS: control guard (idle timeout, no lock-out by 64 clients, refusals summed up, squatters refused, spargioctl bounded)"
