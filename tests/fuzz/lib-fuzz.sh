# shellcheck shell=sh
# lib-fuzz.sh - sourced by the tests/fuzz/run-fuzz-* runners (and run-fuzz-selftest, which
# proves it): probe clang's libFuzzer, build a target with ASan and UBSan, fuzz it for a
# bounded time, and turn every finding into a FAIL (exit 1) with its input kept.
#
# Exit 77 (automake's SKIP) comes from sp_fuzz_require alone, when clang or libFuzzer is
# missing or under the TSan build (see below). libFuzzer's own exit status on a finding
# is 77 too (-error_exitcode's default): sp_fuzz_run sets it to 1, and reads anything but
# a clean exit with no new artifact as a failure: an abort (a CHECK), a leak, a sanitizer
# report, a timeout (-timeout), running out of memory (-rss_limit_mb, -malloc_limit_mb),
# a signal. Each crashing input is kept as OUT/NAME-crash-SHA1 (leak-, timeout-, oom-)
# and named in the log with the command that replays it.
#
# Under the TSan build the runners skip: the fuzz binaries are built here by clang with
# their own flags (ASan+UBSan), whatever the build is configured with, so the TSan build
# would run the very binary that the default and ASan builds already run; and the parsers
# fuzzed are single-threaded, so a ThreadSanitizer fuzz build would have nothing to find.
#   SP_FUZZ_SECONDS  how long each target fuzzes (default 20)
#   CC_FUZZ          the compiler (default clang)
set -u
top=${srcdir:-$(dirname "$0")/../..}
out=${BUILDDIR:-.}/tests/fuzz
cc=${CC_FUZZ:-clang}
secs=${SP_FUZZ_SECONDS:-20}

# sp_fuzz_require NAME: exit 77 with a SKIP line unless clang links -fsanitize=fuzzer here.
sp_fuzz_require() {
	if [ "${SP_TEST_SCALE:-}" = tsan ]; then
		echo "SKIP: fuzzing runs in the default and sanitizer builds, not under TSan"
		exit 77
	fi
	if ! command -v "$cc" >/dev/null 2>&1; then
		echo "SKIP: $cc not found (apt-get install clang)"
		exit 77
	fi
	mkdir -p "$out" || exit 1
	# libFuzzer ships with clang's runtime (libclang-rt-NN-dev on Debian): probe for it
	_probe=$out/probe-fuzzer-$1
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
		>"$_probe.c"
	if ! "$cc" -fsanitize=fuzzer "$_probe.c" -o "$_probe" >/dev/null 2>&1; then
		echo "SKIP: $cc cannot link -fsanitize=fuzzer (install libclang-rt-dev)"
		rm -f "$_probe" "$_probe.c"
		exit 77
	fi
	rm -f "$_probe" "$_probe.c"
}

# sp_fuzz_build BIN DEPS -- COMPILER ARGS...: build BIN with libFuzzer, ASan and UBSan
# (every UBSan finding fatal) unless it is newer than every file or directory in DEPS.
sp_fuzz_build() {
	_bin=$1
	_deps=$2
	shift 3
	# shellcheck disable=SC2086 # DEPS is a list
	if [ -x "$_bin" ] && [ -z "$(find $_deps -newer "$_bin" 2>/dev/null | head -1)" ]; then
		return 0
	fi
	echo "building $_bin"
	"$cc" -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-I"$top/src" "$@" -o "$_bin" || { echo "FAIL: cannot build $_bin"; exit 1; }
}

# sp_fuzz_run NAME BIN LIBFUZZER-ARGS...: fuzz; returns 0 on a clean run, 1 on a finding
# (its log's tail, the reason and each crashing input printed).
sp_fuzz_run() {
	_name=$1
	_bin=$2
	shift 2
	_log=$out/fuzz_$_name.log
	echo "fuzzing $_name: $*"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
		"$_bin" -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$out/$_name-" \
		-print_final_stats=1 "$@" >"$_log" 2>&1
	_status=$?
	tail -40 "$_log"
	# the inputs libFuzzer kept ("Test unit written to FILE", twice for one when a sanitizer
	# aborts; slow-unit-* only notes a slow input, not a finding)
	_found=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$_log" | grep -v '/[^/]*slow-unit-[^/]*$' | sort -u)
	_why=
	if [ "$_status" != 0 ]; then
		_why="exit status $_status"
	elif [ -n "$_found" ]; then
		_why="a crashing input was written"
	elif grep -qE '^==[0-9]+==ERROR: |^SUMMARY: (Address|Leak|Undefined)Sanitizer|runtime error: |deadly signal' "$_log"; then
		_why="a sanitizer report"
	fi
	if [ -z "$_why" ]; then
		echo "PASS: fuzz_$_name: no finding (log: $_log)"
		return 0
	fi
	echo "FAIL: fuzz_$_name: $_why (log: $_log)"
	for _f in $_found; do
		echo "FAIL: crashing input kept: $_f (replay: $_bin $_f)"
	done
	[ -n "$_found" ] || echo "FAIL: no crashing input was written (see the log)"
	return 1
}
