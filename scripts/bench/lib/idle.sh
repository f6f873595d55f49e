# scripts/bench/lib/idle.sh - sourced by the benchmarks: a server's memory per idle
# keep-alive connection.

idle_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# rss_of PID: KiB resident in the process and its children (the workers)
rss_of() {
	local total=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
	done
	echo $total
}

# idle_bytes_per_conn PID PORT N PATH OUT: holds N idle connections to PORT (one request
# for PATH each) and prints the RSS growth of PID per connection, in bytes, between N/2
# and N of them (the warm-up of the first requests left out); nothing when the client
# could not hold them all. OUT: a scratch file.
idle_bytes_per_conn() {
	local pid=$1 port=$2 n=$3 path=$4 out=$5 half full i
	exec {fd}> >(exec "$idle_lib_dir/idle_client.py" "$port" "$n" "$path" >"$out" 2>&1)
	for i in $(seq 600); do grep -q "^half\|closed" "$out" 2>/dev/null && break; sleep 0.1; done
	sleep 2 # idle for real: files gives a request buffer back after a tick (<= 1 s)
	half=$(rss_of "$pid")
	echo go >&$fd
	for i in $(seq 600); do grep -q "^ok\|closed" "$out" 2>/dev/null && break; sleep 0.1; done
	sleep 2 # idle for real: files gives a request buffer back after a tick (<= 1 s)
	full=$(rss_of "$pid")
	exec {fd}>&-
	if grep -q "^ok $n\$" "$out"; then
		echo $(((full - half) * 1024 / (n - n / 2)))
	else
		echo "idle: $(cat "$out")" >&2
	fi
}
