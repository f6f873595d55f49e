#!/bin/bash
# tests/package/deb.sh - the Debian package, built and installed for real (`make
# check-package`; not part of `make check`: the build alone takes minutes).
#
# Builds spargiod_VERSION_ARCH.deb with `dpkg-buildpackage -us -uc -b` from a copy of the
# source tree (nocheck: the unit tests are make check's), checks its contents and
# conffiles, runs lintian (every remaining tag must be overridden in debian/ with its
# reason), then installs it into a private root: an overlay of the host's / on a tmpfs,
# in a mount namespace of its own (unshare --mount), entered with chroot. Nothing is
# written to the host's /etc or dpkg database. There it checks: the spargiod system
# user, the conffile (kept when changed, across a reinstall, and after dpkg -r; gone
# after purge), the unit enabled but not started without systemd (no /run/systemd/system
# in the private root), the man pages, the bash completion, `spargiod -t` on the shipped
# config; then, with /run/systemd/system present and systemctl replaced by a recorder
# (in the private root only), that install starts the unit and dpkg -r stops it.
# Needs root (mounts), dpkg-dev, debhelper; lintian when present.
. "$(dirname "$0")/../integration/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)

[ "$(id -u)" = 0 ] || skip "needs root (a mount namespace and an overlay)"
for t in dpkg-buildpackage dh unshare chroot; do
	command -v "$t" >/dev/null || skip "$t not found (apt-get install dpkg-dev debhelper)"
done

# --- build, from a copy of the tree (a checkout's files, or an unpacked tarball's) ----
version=$(cd "$src" && dpkg-parsechangelog -S Version) || fail "debian/changelog"
arch=$(dpkg --print-architecture)
mkdir -p "$tmp/build/spargiod-$version"
if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1; then
	(cd "$src" && git ls-files -co --exclude-standard | grep -v '^build/' | tar -cf - -T -)
else
	(cd "$src" && tar -cf - --exclude=./build --exclude='./spargiod-*' .)
fi | tar -xf - -C "$tmp/build/spargiod-$version" || fail "copy of the source tree"
echo "building spargiod_${version}_$arch.deb"
(cd "$tmp/build/spargiod-$version" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b) \
	>"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; fail "dpkg-buildpackage failed"; }
deb=$tmp/build/spargiod_${version}_$arch.deb
[ -f "$deb" ] || fail "no $deb: $(ls "$tmp/build")"

# --- what the .deb holds ----------------------------------------------------------------
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/sbin/spargiod /usr/bin/spargioctl /usr/bin/spargio-echo \
	/etc/spargiod/spargiod.yaml /lib/systemd/system/spargiod.service \
	/usr/lib/sysusers.d/spargiod.conf /usr/share/bash-completion/completions/spargioctl \
	/usr/share/man/man8/spargiod.8.gz /usr/share/man/man8/spargioctl.8.gz \
	/usr/share/man/man5/spargiod.yaml.5.gz /usr/share/man/man1/spargio-echo.1.gz \
	/usr/share/doc/spargiod/copyright /usr/share/doc/spargiod/examples/demo.yaml; do
	grep -qx -- "$f" <<<"$contents" || fail "$f not in the package: $contents"
done
dpkg-deb -e "$deb" "$tmp/control"
[ "$(cat "$tmp/control/conffiles")" = /etc/spargiod/spargiod.yaml ] ||
	fail "conffiles: $(cat "$tmp/control/conffiles")"
dpkg-deb -f "$deb" Depends | grep -q adduser || fail "Depends without adduser"
# the unit as installed names the installed paths
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./lib/systemd/system/spargiod.service |
	grep -qx 'ExecStart=/usr/sbin/spargiod -c /etc/spargiod/spargiod.yaml' || fail "unit's ExecStart"

# --- lintian: clean, or each tag overridden in debian/ with a reason ---------------------
if command -v lintian >/dev/null; then
	lintian --pedantic "$tmp/build/spargiod_${version}_$arch.changes" >"$tmp/lintian.out" 2>&1
	if grep -E '^[EWIP]: ' "$tmp/lintian.out"; then
		fail "lintian tags above (fix them, or override them in debian/ saying why)"
	fi
else
	skip_part "no lintian: the package is not linted (apt-get install lintian)"
fi

# --- install into a private root ---------------------------------------------------------
cat >"$tmp/systemctl" <<'STUB'
#!/bin/sh
# systemctl of the private root: records what the maintainer scripts ask of systemd
echo "$*" >>/var/log/systemctl.calls
case "$*" in
--version*) echo "systemd 252 (252)" ;;
*is-enabled*) echo enabled ;;
esac
exit 0
STUB
chmod +x "$tmp/systemctl"
cp "$deb" "$tmp/spargiod.deb"
cat >"$tmp/inroot.sh" <<'INROOT'
# runs in the private root (chroot); prints "FAIL: ..." and exits 1 on the first failure
set -u
fail() { echo "FAIL: $*"; exit 1; }
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
! getent passwd spargiod >/dev/null || echo "note: the host already has a spargiod user"
dpkg -i /tmp/spargiod.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
# the user: a system user with its own group, no home, no login
IFS=: read -r _ _ uid gid _ home shell <<<"$(getent passwd spargiod)"
[ -n "${uid:-}" ] || fail "no spargiod user after install"
[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ] ||
	fail "spargiod user: $(getent passwd spargiod)"
[ "$(getent group spargiod | cut -d: -f3)" = "$gid" ] || fail "spargiod group"
# conffile, unit enabled, not started (no systemd here), man pages, completion
dpkg-query -W -f='${Conffiles}\n' spargiod | grep -q '^ /etc/spargiod/spargiod.yaml [0-9a-f]\{32\}$' ||
	fail "conffile not registered: $(dpkg-query -W -f='${Conffiles}' spargiod)"
[ -f /lib/systemd/system/spargiod.service ] || fail "no unit"
[ "$(readlink /etc/systemd/system/multi-user.target.wants/spargiod.service)" = \
	/lib/systemd/system/spargiod.service ] || fail "unit not enabled"
[ ! -e /var/log/systemctl.calls ] || fail "systemd asked without systemd: $(cat /var/log/systemctl.calls)"
! pgrep -f '^/usr/sbin/spargiod -c /etc/spargiod/spargiod.yaml' >/dev/null || fail "a daemon was started"
for m in man8/spargiod.8.gz man8/spargioctl.8.gz man5/spargiod.yaml.5.gz man1/spargio-echo.1.gz; do
	zcat "/usr/share/man/$m" | grep -q '^\.TH ' || fail "man page $m"
done
bash -c 'source /usr/share/bash-completion/completions/spargioctl && complete -p spargioctl' |
	grep -q '_spargioctl' || fail "bash completion does not register"
/usr/sbin/spargiod -t -c /etc/spargiod/spargiod.yaml >/tmp/t.log 2>&1 ||
	{ cat /tmp/t.log; fail "spargiod -t on the shipped config"; }
/usr/bin/spargioctl status 2>&1 | grep -q '^spargioctl: no daemon at /run/spargiod/control.sock: is spargiod running' ||
	fail "spargioctl without a daemon: $(/usr/bin/spargioctl status 2>&1)"
# the administrator's change survives a reinstall (and an upgrade: the same dpkg rule)
echo '# local change' >>/etc/spargiod/spargiod.yaml
dpkg -i /tmp/spargiod.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "reinstall"; }
tail -1 /etc/spargiod/spargiod.yaml | grep -qx '# local change' || fail "conffile replaced on reinstall"
# remove: programs and unit go, the conffile stays; purge: it goes, and the enablement
dpkg -r spargiod >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -r"; }
[ ! -e /usr/sbin/spargiod ] && [ ! -e /lib/systemd/system/spargiod.service ] &&
	[ ! -e /usr/share/bash-completion/completions/spargioctl ] || fail "files left after dpkg -r"
[ -f /etc/spargiod/spargiod.yaml ] || fail "conffile gone after dpkg -r (only purge removes it)"
dpkg -P spargiod >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -P"; }
[ ! -e /etc/spargiod/spargiod.yaml ] || fail "conffile left after purge"
[ ! -e /etc/systemd/system/multi-user.target.wants/spargiod.service ] || fail "enablement left after purge"
# with systemd: install starts the unit, remove stops it (systemctl recorded, not run)
mkdir -p /run/systemd/system
cp /tmp/systemctl /usr/bin/systemctl
rm -f /usr/sbin/policy-rc.d # a container's "start nothing" (exit 101): not Debian's default
dpkg -i /tmp/spargiod.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i under systemd"; }
grep -q 'start spargiod.service' /var/log/systemctl.calls || fail "install did not start the unit: $(cat /var/log/systemctl.calls)"
dpkg -r spargiod >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -r under systemd"; }
grep -q 'stop spargiod.service' /var/log/systemctl.calls || fail "remove did not stop the unit: $(cat /var/log/systemctl.calls)"
echo "in the private root: all checks passed"
INROOT

host_passwd=$(md5sum /etc/passwd)
unshare --mount --propagation private bash -c '
	set -e
	t=$1
	mkdir -p "$t/ov"
	mount -t tmpfs tmpfs "$t/ov"
	mkdir "$t/ov/upper" "$t/ov/work" "$t/ov/root"
	mount -t overlay overlay -o "lowerdir=/,upperdir=$t/ov/upper,workdir=$t/ov/work" "$t/ov/root"
	r=$t/ov/root
	mount -t proc proc "$r/proc"
	mount --rbind /dev "$r/dev"
	mount -t tmpfs tmpfs "$r/run"
	mount -t tmpfs tmpfs "$r/tmp"
	cp "$t/spargiod.deb" "$t/systemctl" "$t/inroot.sh" "$r/tmp/"
	chroot "$r" /bin/bash /tmp/inroot.sh
' _ "$tmp" >"$tmp/inroot.log" 2>&1
rc=$?
cat "$tmp/inroot.log"
[ "$(md5sum /etc/passwd)" = "$host_passwd" ] || fail "the host's /etc/passwd changed!"
[ "$rc" = 0 ] || fail "in the private root (above)"
echo "PASS: spargiod_${version}_$arch.deb built, lint-clean, installed, reinstalled, removed and purged in a private root"
