# shellcheck shell=bash
# lib-deps.sh - sourced by scripts/: installs the Debian packages spargiod needs.
# Nothing is fetched when everything is present (offline machines work).

SP_DEB_PACKAGES="build-essential autoconf automake libtool pkg-config \
liburing-dev libyaml-dev libssl-dev libsystemd-dev check libjansson-dev \
socat curl openssl valgrind clang libclang-rt-14-dev python3 systemd iproute2 tmux"

sp_install_deps() {
	local missing="" p status
	for p in $SP_DEB_PACKAGES "$@"; do
		status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		case "$status" in
		*"install ok installed"*) ;;
		*) missing="$missing $p" ;;
		esac
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing Debian packages:$missing" >&2
		echo "install them as root: apt-get install$missing" >&2
		return 1
	fi
	echo "installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# $missing is a list of words on purpose
	# shellcheck disable=SC2086
	if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } \
		>/tmp/sp-apt.$$.log 2>&1; then
		tail -20 /tmp/sp-apt.$$.log >&2
		echo "apt-get failed (full output in /tmp/sp-apt.$$.log)" >&2
		return 1
	fi
	rm -f /tmp/sp-apt.$$.log
}
