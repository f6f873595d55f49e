#!/bin/bash
# control.sh - the control socket and spargioctl: answers checked field by field after
# real traffic (counters, refusals and percentiles move by exactly what was sent), plain
# socat works, reload through spargioctl (its verdict and exit status, a rejection with
# FILE:LINE:COL), drain, bad input answered without harm, peer credentials enforced,
# unreachable socket exit 2.
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl
sock=$tmp/control.sock

pa=$(free_port); pb=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
engine: {shards: 2}
control: {socket: "$sock", mode: "0666"}
log: {access_log: false}
listeners:
  - {name: a, bind: "127.0.0.1:$pa", route: echo}
  - {name: b, bind: "127.0.0.1:$pb", route: guarded}
routes:
  - {name: echo, placement: round_robin, pipeline: [{echo: {}}]}
  - {name: guarded, pipeline: [{acl: {deny: ["127.0.0.0/8"]}}, {echo: {}}]}
CONF
start_daemon "$tmp/conf.yaml"
[ "$(stat -c %a "$sock")" = 666 ] || fail "control socket mode $(stat -c %a "$sock"), want 666"

# jget JSON PYTHON-EXPR: evaluate EXPR on the parsed answer j
jget() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

st=$("$ctl" -s "$sock" --json status) || fail "status: $st"
[ "$(jget "$st" 'j["ok"]')" = True ] || fail "status not ok: $st"
[ "$(jget "$st" 'j["pid"]')" = "$pid" ] || fail "status pid: $st"
[ "$(jget "$st" 'j["generation"]')" = 1 ] || fail "status generation: $st"
[ "$(jget "$st" 'j["shards"]')" = 2 ] || fail "status shards: $st"
[ "$(jget "$st" 'j["config"]')" = "$tmp/conf.yaml" ] || fail "status config: $st"

"$load" --connect 127.0.0.1:$pa --conns 300 --concurrency 6 --size 1000 >/dev/null || fail "load"
for _ in 1 2 3; do echo_ok TCP4:127.0.0.1:$pb && fail "acl let a client through"; done
# the last sessions may still be closing on their shard: wait for the counters to settle
want='[r for r in j["routes"] if r["name"]=="echo"][0]'
wait_until 30 eval '[ "$(jget "$("$ctl" -s "$sock" --json routes)" "$want[\"active\"]")" = 0 ]' || fail "sessions never closed"
rt=$("$ctl" -s "$sock" --json routes)
[ "$(jget "$rt" "$want['sessions']")" = 300 ] || fail "route sessions: $rt"
[ "$(jget "$rt" "$want['bytes_in']")" = 300000 ] || fail "route bytes_in: $rt"
[ "$(jget "$rt" "$want['bytes_out']")" = 300000 ] || fail "route bytes_out: $rt"
[ "$(jget "$rt" "$want['placement']")" = round_robin ] || fail "route placement: $rt"
g='[r for r in j["routes"] if r["name"]=="guarded"][0]'
[ "$(jget "$rt" "$g['denied']")" = 3 ] || fail "route denied: $rt"
[ "$(jget "$rt" "$g['pipeline']")" = "['acl', 'echo']" ] || fail "route pipeline: $rt"
ls=$(echo listeners | timeout 5 socat - UNIX-CONNECT:"$sock") || fail "socat listeners"
[ "$(jget "$ls" '[l for l in j["listeners"] if l["name"]=="a"][0]["accepted"]')" = 300 ] || fail "listener accepted: $ls"
[ "$(jget "$ls" '[l for l in j["listeners"] if l["name"]=="b"][0]["accepted"]')" = 3 ] || fail "listener b accepted: $ls"
# per listener: active, and refusals by reason, exactly what was sent
[ "$(jget "$ls" '[(l["active"], l["refused_acl"], l["refused_rate_limit"], l["refused_limit"]) for l in j["listeners"]]')" = "[(0, 0, 0, 0), (0, 3, 0, 0)]" ] ||
	fail "listener refusals: $ls"
# per route: errors, and session-duration percentiles (us) present and ordered
[ "$(jget "$rt" "$want['errors']")" = 0 ] || fail "route errors: $rt"
[ "$(jget "$rt" "0 < $want['p50_us'] <= $want['p90_us'] <= $want['p99_us'] <= $want['p999_us']")" = True ] ||
	fail "route percentiles: $rt"
[ "$(jget "$rt" "$g['p50_us']")" = None ] || fail "percentile of a route without sessions: $rt"
sh=$("$ctl" -s "$sock" --json shards)
[ "$(jget "$sh" 'len(j["shards"])')" = 2 ] || fail "shards: $sh"
[ "$(jget "$sh" 'sum(s["tasks_spawned"] for s in j["shards"]) >= 300')" = True ] || fail "shards tasks: $sh"
stats=$(echo stats | timeout 5 socat - UNIX-CONNECT:"$sock")
[ "$(jget "$stats" 'sorted(j.keys())')" = "['connections', 'generation', 'listeners', 'ok', 'routes', 'shards', 'upstreams']" ] ||
	fail "stats keys: $stats"
# several commands on one connection, each answered on its own line
two=$(printf 'status\nshards\n' | timeout 5 socat - UNIX-CONNECT:"$sock" | wc -l)
[ "$two" = 2 ] || fail "two commands gave $two lines"
human=$("$ctl" -s "$sock" routes) || fail "table output"
grep -qE '^  name +placement +pipeline +sessions' <<<"$human" || fail "no table header: $human"

# bad input: an error answer, the daemon unharmed
a=$(echo "frobnicate now" | timeout 5 socat - UNIX-CONNECT:"$sock")
[ "$(jget "$a" 'j["error"]')" = "unknown command 'frobnicate'" ] || fail "unknown command: $a"
a=$(head -c 3000 /dev/urandom | tr -d '\n' | timeout 5 socat - UNIX-CONNECT:"$sock" | head -1)
[ "$(jget "$a" 'j["ok"]')" = False ] || fail "junk: $a"
a=$(head -c 10000 /dev/zero | tr '\0' x | timeout 5 socat - UNIX-CONNECT:"$sock")
grep -q "longer than 4096 bytes" <<<"$a" || fail "over-long line: $a"
"$ctl" -s "$sock" drain >/dev/null 2>&1; [ $? = 1 ] || fail "drain without a listener: want exit 1"
echo_ok TCP4:127.0.0.1:$pa || fail "echo after hostile control input"

# reload through spargioctl: verdict and exit status
out=$("$ctl" -s "$sock" reload) || fail "reload: $out"
grep -q "^generation: 2$" <<<"$out" || fail "reload answer: $out"
cp "$tmp/conf.yaml" "$tmp/good.yaml"
sed -i 's/route: guarded/route: missing/' "$tmp/conf.yaml"
err=$("$ctl" -s "$sock" reload 2>&1); rc=$?
[ "$rc" = 1 ] || fail "rejected reload: exit $rc"
grep -qE "spargioctl: $tmp/conf.yaml:[0-9]+:[0-9]+: .*missing" <<<"$err" || fail "rejection text: $err"
cp "$tmp/good.yaml" "$tmp/conf.yaml"

# drain: stops accepting on that listener only
out=$("$ctl" -s "$sock" --json drain a) || fail "drain: $out"
wait_until 30 eval "! (exec 3<>/dev/tcp/127.0.0.1/$pa) 2>/dev/null" || fail "drained listener still accepts"
"$ctl" -s "$sock" --json drain a >/dev/null 2>&1 && fail "draining twice succeeded"
"$ctl" -s "$sock" --json drain nosuch >/dev/null 2>&1 && fail "draining an unknown listener succeeded"
out=$("$ctl" -s "$sock" reload) || fail "reload after drain: $out"
wait_until 30 echo_ok TCP4:127.0.0.1:$pa || fail "a reload did not bring the drained listener back"

# peer credentials: another uid is refused even though the socket file is 0666
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$tmp" # the file permissions let nobody in: only the credentials check stops it
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$ctl" -s "$sock" status 2>&1); rc=$?
	[ "$rc" = 1 ] && grep -q "permission denied" <<<"$out" || fail "nobody was not refused: $rc $out"
	wait_until 30 log_has "control: refused a client with uid 65534" || fail "refusal not logged"
	creds="peer credentials checked"
else
	skip_part "peer credentials: not root or no setpriv, so no other uid to be refused"
	creds="peer-credential refusal not checked"
fi

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
[ -e "$sock" ] && fail "control socket left behind"
"$ctl" -s "$sock" status >/dev/null 2>"$tmp/err"; rc=$?
[ "$rc" = 2 ] && grep -q "no daemon at $sock: is spargiod running?" "$tmp/err" || fail "unreachable: exit $rc $(cat "$tmp/err")"
echo "PASS: control (status, routes/listeners/shards counters exact, stats, bad input, reload verdicts, drain; $creds)"
