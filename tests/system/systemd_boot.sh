#!/bin/bash
# systemd_boot.sh - the shipped unit under a real systemd (issue 25).
#
# Boots the host's systemd (252 on Debian 12) as PID 1 in private PID, mount, network
# and cgroup namespaces, on a root of its own: an overlayfs whose lower layer is the
# host's root file system and whose upper layer is a tmpfs mounted inside the private
# mount namespace, entered with pivot_root. Nothing is written to the host's paths
# (apart from this test's own tmpdir and cgroup), and everything the test mounts
# disappears with the namespace. Inside it installs spargiod with `make install`,
# creates its user from systemd/spargiod.sysusers, enables and starts the shipped
# unit, and checks: Type=notify reaches active (running); `systemctl reload` succeeds
# on a good config and fails visibly on a bad one while the old config keeps serving;
# `systemctl stop` drains an open connection; the access log and errors are in the
# journal with their fields; the watchdog restarts a wedged daemon (when the test-only
# binary tests/tools/spargiod-hooks is built). Prints `systemd-analyze security`.
#
# usage: tests/system/systemd_boot.sh [BUILDDIR]   (root; BUILDDIR configured with
# --prefix=/usr or any prefix: the unit's paths follow it). Exit 77 with `SKIP: why`
# where systemd cannot boot here. SDBOOT_TIMEOUT (default 150) bounds the whole run.
set -u

here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"

# ---- stage 2: PID 1 of the new namespaces, before systemd --------------------------
if [ "${1:-}" = --stage2 ]; then
	set -e
	t=$2
	exec >>"$t/console.log" 2>&1
	mount --make-rprivate /
	# the upper layer and the work dir live on a tmpfs of this mount namespace only
	mount -t tmpfs -o mode=0755,size=1g sdboot-upper "$t/ns"
	mkdir -p "$t/ns/upper" "$t/ns/work" "$t/ns/root"
	cp -a "$t/stage/." "$t/ns/upper/"
	r=$t/ns/root
	mount -t overlay sdboot-root -o "lowerdir=/,upperdir=$t/ns/upper,workdir=$t/ns/work" "$r"
	mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
	mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
	# our own cgroup (the cgroup namespace's root): systemd sees a unified hierarchy
	mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup"
	mount -t tmpfs -o mode=0755,nosuid tmpfs "$r/dev"
	for n in null zero full random urandom tty; do
		touch "$r/dev/$n"
		mount --bind "/dev/$n" "$r/dev/$n"
	done
	mkdir -p "$r/dev/shm" "$r/dev/pts"
	# a devpts of its own, with /dev/ptmx as a link to it, as containers do:
	# PrivateDevices= binds /dev/pts and needs /dev/ptmx (226/NAMESPACE without)
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$r/dev/pts"
	ln -s pts/ptmx "$r/dev/ptmx"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"
	ln -s /proc/self/fd "$r/dev/fd"
	ln -s /proc/self/fd/0 "$r/dev/stdin"
	ln -s /proc/self/fd/1 "$r/dev/stdout"
	ln -s /proc/self/fd/2 "$r/dev/stderr"
	# systemd logs to the journal once it is up, to /dev/console before: console.log
	touch "$r/dev/console"
	mount --bind "$t/console.log" "$r/dev/console"
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
	systemd-sysusers --root="$r" "$r/usr/lib/sysusers.d/spargiod.conf"
	cd "$r"
	mkdir -p .oldroot
	pivot_root . .oldroot
	umount -l /.oldroot
	rmdir /.oldroot
	cd /
	exec env -i container=spargiod-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		/lib/systemd/systemd --system --log-target=journal --show-status=no
fi

# ---- the test ------------------------------------------------------------------------
BUILDDIR=$(cd "${1:-${BUILDDIR:-.}}" && pwd)
limit=${SDBOOT_TIMEOUT:-150}
sd=/lib/systemd/systemd

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (namespaces, mounts, cgroups)"
[ -x "$sd" ] || skip "no $sd"
for c in unshare nsenter pivot_root systemd-sysusers python3 make; do
	command -v "$c" >/dev/null || skip "no $c"
done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
	grep -qw overlay /proc/filesystems || skip "no overlayfs in this kernel"
cgbase=
for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do
	if [ "$(stat -fc %T "$d" 2>/dev/null)" = cgroup2fs ]; then cgbase=$d; break; fi
done
[ -n "$cgbase" ] || skip "no cgroup2 hierarchy mounted (systemd needs one of its own)"
[ -f "$BUILDDIR/Makefile" ] && [ -x "$BUILDDIR/spargiod" ] || skip "no built tree in $BUILDDIR"
sdver=$("$sd" --version | awk 'NR == 1 {print $2}')
echo "# systemd $sdver, cgroup2 at $cgbase"

tmp=$(mktemp -d /tmp/spargiod-sdboot.XXXXXX)
cg=$cgbase/spargiod-sdboot-$$
pid=
upid=
timer=
failed=0

cleanup() {
	set +e
	[ -n "$timer" ] && kill "$timer" 2>/dev/null
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"       # the namespace's PID 1: the kernel kills the rest
	fi
	[ -n "$upid" ] && wait "$upid" 2>/dev/null
	if [ -d "$cg" ]; then
		for _ in $(seq 50); do
			find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
			[ -d "$cg" ] || break
			sleep 0.1
		done
		[ -d "$cg" ] && echo "# warning: could not remove $cg"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: timed out after ${limit}s"; dump; exit 1' USR1
(
	trap 'kill "$s" 2>/dev/null; exit 0' TERM
	sleep "$limit" & s=$!
	wait "$s" && kill -USR1 $$
) >/dev/null 2>&1 &
timer=$!

in_ns() { timeout 30 nsenter -t "$pid" -m -p -n -C -r -w "$@"; }
dump() {
	[ -n "$pid" ] || { cat "$tmp/console.log" 2>/dev/null | tail -40; return; }
	echo "--- systemctl status spargiod"
	in_ns systemctl status --no-pager -l spargiod.service 2>&1 | tail -30
	echo "--- journalctl -u spargiod (last 30)"
	in_ns journalctl --no-pager -u spargiod.service 2>&1 | tail -30
	echo "--- systemd console (what names spargiod or failed, last 30)"
	grep -iE 'spargiod|fail' "$tmp/console.log" | tail -30
}
fail() {
	echo "FAIL: $*"; dump
	if [ -n "${SDBOOT_HOLD:-}" ]; then   # debugging: keep it up to look inside
		echo "# holding for ${SDBOOT_HOLD}s: nsenter -t $pid -m -p -n -C -r -w"
		kill "$timer" 2>/dev/null; sleep "$SDBOOT_HOLD"
	fi
	exit 1
}
check() { if "$@"; then :; else failed=1; fi; }
ok() { echo "ok: $*"; }

# ---- the root's own files: spargiod, its configs, what the test masks ----------------
mkdir -p "$tmp/ns" "$tmp/stage"
make -C "$BUILDDIR" install DESTDIR="$tmp/stage" >"$tmp/install.log" 2>&1 ||
	{ tail -20 "$tmp/install.log"; fail "make install DESTDIR=... failed"; }
unit=$(cd "$tmp/stage" && find . -name spargiod.service -path '*systemd/system*' | head -1)
[ -n "$unit" ] || skip "this build installs no unit (configured --without-systemdsystemunitdir)"
sbin=$(cd "$tmp/stage" && find . -type f -name spargiod -perm -u+x | head -1)
etc=$(sed -n 's|^ExecStart=.* -c \(.*\)/spargiod.yaml$|\1|p' "$tmp/stage/$unit")
echo "# installed: ${unit#.} ${sbin#.}, config dir $etc"
s=$tmp/stage
mkdir -p "$s/usr/lib/sysusers.d" "$s$etc" "$s/etc/systemd/system" "$s/etc/systemd/system-generators"
cp "$here/../../systemd/spargiod.sysusers" "$s/usr/lib/sysusers.d/spargiod.conf"

conf() { # conf EXTRA_LISTENER_LINE
	cat <<CONF
version: 1
engine: {shards: 2}
control: {socket: /run/spargiod/control.sock}
log: {level: info, access_log: true}
limits: {drain_timeout: 20s}
process: {user: spargiod}
listeners:
  - {name: echo-a, bind: "127.0.0.1:7000", route: echo}
$1
routes:
  - name: echo
    pipeline:
      - acl: {allow: ["127.0.0.0/8"]}
      - echo: {}
CONF
}
conf "" >"$s$etc/spargiod.yaml"
conf '  - {name: echo-b, bind: "127.0.0.1:7001", route: echo}' >"$s$etc/good2.yaml"
conf '  - {name: echo-c, bind: "127.0.0.1:7002", route: echo, no_such_key: 1}' >"$s$etc/bad.yaml"

# A target of our own is the default; every unit the distribution or the host would
# start through sysinit/basic/sockets/timers/multi-user is masked (the journal aside),
# and so are the generators (fstab, getty, sysv...).
cat >"$s/etc/systemd/system/spargiod-test.target" <<'UNIT'
[Unit]
Description=spargiod systemd boot test
Requires=basic.target
After=basic.target
AllowIsolate=yes
UNIT
ln -s spargiod-test.target "$s/etc/systemd/system/default.target"
for g in /lib/systemd/system-generators/* /usr/lib/systemd/system-generators/* \
	 /etc/systemd/system-generators/*; do
	[ -e "$g" ] && ln -sf /dev/null "$s/etc/systemd/system-generators/$(basename "$g")"
done
for w in /lib/systemd/system/*.wants/* /usr/lib/systemd/system/*.wants/* \
	 /etc/systemd/system/*.wants/*; do
	[ -e "$w" ] || [ -L "$w" ] || continue
	u=$(basename "$w")
	case $u in
	systemd-journald*|*.slice|*.target) continue ;;
	esac
	ln -sf /dev/null "$s/etc/systemd/system/$u"
done
for u in getty@.service serial-getty@.service console-getty.service \
	 systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
	 systemd-networkd-wait-online.service NetworkManager-wait-online.service \
	 systemd-logind.service dbus.service dbus.socket systemd-udevd.service \
	 systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service \
	 systemd-tmpfiles-clean.service systemd-tmpfiles-clean.timer \
	 systemd-remount-fs.service systemd-sysusers.service systemd-firstboot.service; do
	ln -sf /dev/null "$s/etc/systemd/system/$u"
done

# ---- boot ----------------------------------------------------------------------------
mkdir "$cg" || skip "cannot create a cgroup under $cgbase"
(
	echo "$BASHPID" >"$cg/cgroup.procs" || exit 90
	exec unshare --cgroup --pid --fork --mount --net --propagation private \
		"$self" --stage2 "$tmp"
) 2>>"$tmp/unshare.log" &
upid=$!
for _ in $(seq 100); do
	pid=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null | awk '{print $1}')
	[ -n "$pid" ] && break
	kill -0 "$upid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$pid" ]; then
	wait "$upid"; rc=$?
	cat "$tmp/console.log" 2>/dev/null | tail -20
	pid=
	skip "the namespaces could not be made (unshare exit $rc)"
fi
echo "# systemd booting as PID 1 of its namespaces, host PID $pid"

# wait for the manager to answer on its private socket and finish starting up
state=
for _ in $(seq 300); do
	kill -0 "$pid" 2>/dev/null || break
	state=$(in_ns systemctl is-system-running 2>/dev/null)
	case $state in running|degraded) break ;; esac
	sleep 0.2
done
if ! kill -0 "$pid" 2>/dev/null; then
	tail -30 "$tmp/console.log"
	pid=
	skip "systemd $sdver did not stay up as PID 1 here (see its console above)"
fi
case $state in
running) ok "systemd $sdver booted: is-system-running=$state" ;;
degraded)
	echo "# systemd booted degraded; failed units:"
	in_ns systemctl --failed --no-pager --no-legend ;;
*) tail -30 "$tmp/console.log"; skip "systemd $sdver did not finish booting (state '$state')" ;;
esac

# ---- the unit --------------------------------------------------------------------------
echo_ok() { # echo_ok PORT: a line sent comes back
	in_ns python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
msg = b"ping %s\n" % sys.argv[1].encode()
s.sendall(msg)
got = b""
while len(got) < len(msg):
    d = s.recv(100)
    if not d:
        break
    got += d
sys.exit(0 if got == msg else 1)
PY
}
show() { in_ns systemctl show -p "$1" --value spargiod.service; }

in_ns systemctl enable --now spargiod.service || fail "systemctl enable --now spargiod failed"
[ "$(show ActiveState)/$(show SubState)" = active/running ] ||
	fail "spargiod is $(show ActiveState)/$(show SubState) after start"
in_ns systemctl status --no-pager spargiod.service | sed -n '1,4p;/Status:/p'
ok "Type=notify unit reached active (running), enabled: $(in_ns systemctl is-enabled spargiod.service)"
user=$(in_ns ps -o user= -p "$(show MainPID)")
[ "$user" = spargiod ] || { echo "not ok: the daemon runs as '$user', not spargiod"; failed=1; }
echo_ok 7000 || fail "echo on 127.0.0.1:7000 did not answer"
ok "echo answers on 127.0.0.1:7000; the daemon runs as $user"

# reload: a good config adds a listener
in_ns cp "$etc/good2.yaml" "$etc/spargiod.yaml"
in_ns systemctl reload spargiod.service || fail "systemctl reload failed on a good config"
echo_ok 7001 || fail "the listener the good reload added does not answer"
ok "systemctl reload on a good config: exit 0, the new listener echo-b answers"

# reload: a bad config fails visibly and the old config keeps serving
since=$(in_ns date '+%Y-%m-%d %H:%M:%S')
in_ns cp "$etc/bad.yaml" "$etc/spargiod.yaml"
in_ns systemctl reload spargiod.service >"$tmp/reload.out" 2>&1
rc=$?
cat "$tmp/reload.out"
[ "$rc" != 0 ] || fail "systemctl reload exited 0 on a bad config"
[ "$(show ActiveState)" = active ] || fail "the unit is $(show ActiveState) after the rejected reload"
echo_ok 7000 && echo_ok 7001 || fail "the old config stopped serving after a rejected reload"
sleep 0.5
in_ns journalctl --no-pager -u spargiod.service --since "$since" -o short >"$tmp/badj.txt"
echo "--- journalctl -u spargiod since the bad reload:"
cat "$tmp/badj.txt"
grep -q 'bad.yaml\|spargiod.yaml:[0-9]*:[0-9]*' "$tmp/badj.txt" ||
	fail "the journal does not say where the config is wrong (FILE:LINE:COL)"
in_ns systemctl status --no-pager -l spargiod.service >"$tmp/status.txt" 2>&1
grep -q 'unknown key' "$tmp/status.txt" ||
	{ cat "$tmp/status.txt"; fail "systemctl status does not show why the reload failed"; }
ok "systemctl reload on a bad config: exit $rc, unit still active, echo-a and echo-b still answer"

# the journal: access log and errors with their fields
in_ns journalctl --no-pager -u spargiod.service -o verbose SPARGIOD_EVENT=access >"$tmp/acc.txt"
echo "--- journalctl -u spargiod -o verbose SPARGIOD_EVENT=access (last entry):"
awk '/^[A-Z][a-z][a-z] [0-9]/ {buf = ""} {buf = buf $0 "\n"} END {printf "%s", buf}' "$tmp/acc.txt" |
	grep -E 'PRIORITY|MESSAGE=|LISTENER|ROUTE|CLIENT|BYTES|END=|_SYSTEMD_UNIT'
grep -q '^ *LISTENER=echo-a$' "$tmp/acc.txt" || fail "no access entry with LISTENER=echo-a"
grep -q '^ *LISTENER=echo-b$' "$tmp/acc.txt" || fail "no access entry with LISTENER=echo-b"
grep -q '^ *CLIENT=127.0.0.1:' "$tmp/acc.txt" || fail "no access entry with CLIENT=127.0.0.1:..."
in_ns journalctl --no-pager -u spargiod.service -p err -o verbose --since "$since" >"$tmp/err.txt"
echo "--- journalctl -u spargiod -p err -o verbose (since the bad reload):"
grep -E '^ *(PRIORITY|MESSAGE)=' "$tmp/err.txt"
grep -q '^ *PRIORITY=[0-3]$' "$tmp/err.txt" || fail "no error (PRIORITY<=3) logged for the bad config"
ok "journal: access entries carry LISTENER/ROUTE/CLIENT/BYTES_*, the rejected config is PRIORITY<=3"

# systemd-analyze security for the running unit
echo "--- systemd-analyze security spargiod.service (running unit)"
in_ns systemd-analyze security --no-pager spargiod.service >"$tmp/sec.txt" 2>&1
tail -1 "$tmp/sec.txt"
grep -E '^✗' "$tmp/sec.txt" | head -40
grep -q 'Overall exposure level for spargiod.service' "$tmp/sec.txt" ||
	{ cat "$tmp/sec.txt"; fail "systemd-analyze security printed no exposure level"; }

# stop drains: a connection open at stop time is still served; the stop waits for it
in_ns cp "$etc/good2.yaml" "$etc/spargiod.yaml"
in_ns python3 - <<'PY' || fail "systemctl stop did not drain the open connection"
import socket, subprocess, sys, time
def state():
    return subprocess.run(["systemctl", "show", "-p", "ActiveState", "--value",
                           "spargiod.service"], capture_output=True, text=True).stdout.strip()
s = socket.create_connection(("127.0.0.1", 7000), timeout=5)
s.sendall(b"one\n"); assert s.recv(100) == b"one\n"
subprocess.run(["systemctl", "stop", "--no-block", "spargiod.service"], check=True)
time.sleep(2)
st = state()
print("state 2 s after `systemctl stop` with a connection open:", st)
if st != "deactivating":
    sys.exit(1)
s.sendall(b"two\n"); got = s.recv(100)
print("the open connection, during the drain: sent b'two\\n', got", got)
if got != b"two\n":
    sys.exit(1)
t0 = time.monotonic()
s.close()
while state() != "inactive" and time.monotonic() - t0 < 15:
    time.sleep(0.1)
took = time.monotonic() - t0
print("inactive %.1f s after the last connection closed (drain_timeout 20s)" % took)
sys.exit(0 if state() == "inactive" and took < 10 else 1)
PY
[ "$(show Result)" = success ] || fail "the drained stop ended with Result=$(show Result)"
ok "systemctl stop drains: deactivating while a connection is open, it is served, inactive once closed"

# the watchdog: a shard wedged through the test-only hook ends in a restart
hooks=$BUILDDIR/tests/tools/spargiod-hooks
if [ -x "$hooks" ]; then
	in_ns mkdir -p /etc/systemd/system/spargiod.service.d
	cp "$hooks" "$tmp/hooks.bin"
	in_ns sh -c "cat >/usr/sbin/spargiod-hooks" <"$hooks"
	in_ns chmod 0755 /usr/sbin/spargiod-hooks
	in_ns sh -c 'cat >/etc/systemd/system/spargiod.service.d/watchdog-test.conf' <<DROP
[Service]
ExecStart=
ExecStart=/usr/sbin/spargiod-hooks -c $etc/spargiod.yaml
Environment=SPARGIOD_TEST_STALL=1:1500:6000
WatchdogSec=2s
DROP
	in_ns systemctl daemon-reload
	in_ns systemctl start spargiod.service || fail "the hooks build did not start"
	n0=$(show NRestarts)
	for _ in $(seq 150); do
		[ "$(show NRestarts)" != "$n0" ] && break
		sleep 0.1
	done
	n1=$(show NRestarts)
	in_ns journalctl --no-pager -u spargiod.service -o short | grep -iE 'watchdog|ABRT|dump' | tail -6
	in_ns journalctl --no-pager -u spargiod.service -o short | grep -q 'Watchdog timeout' ||
		fail "systemd logged no 'Watchdog timeout' for the unit"
	[ "$n1" -gt "$n0" ] || fail "no restart after the watchdog timeout (NRestarts $n0 -> $n1)"
	ok "watchdog: a shard stalled 6 s under WatchdogSec=2s ended in a restart (NRestarts $n0 -> $n1)"
	in_ns systemctl stop spargiod.service
else
	echo "# watchdog check skipped: no $hooks (make check builds it)"
fi

[ "$failed" = 0 ] || exit 1
echo "PASS: the shipped unit under systemd $sdver"
exit 0
