#!/bin/bash
# metrics.sh - the metrics handler and the figures behind it, with real clients: after
# known traffic (echo and proxied sessions, ACL and rate-limit refusals, a refusal at
# max_connections) GET /metrics passes a strict Prometheus text checker (promcheck.py)
# and agrees with `stats` number for number, upstream servers included; percentiles are
# present, ordered and inside the histogram's buckets; per-listener counters move by
# exactly what was sent. HTTP: 404, 405, HEAD, keep-alive and pipelining, a malformed
# request answered 400 and closed.
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl
sock=$tmp/control.sock
check=$(dirname "$0")/promcheck.py

pm=$(free_port); pe=$(free_port); pg=$(free_port); pr=$(free_port); pb=$(free_port); pf=$(free_port)
write_conf() { # write_conf MAX_CONNECTIONS
	cat >"$tmp/conf.yaml" <<CONF
version: 1
engine: {shards: 2}
control: {socket: "$sock"}
log: {access_log: false}
limits: {max_connections: $1}
upstreams:
  - {name: back, servers: [{address: "127.0.0.1:$pb"}]}
listeners:
  - {name: prom, bind: "127.0.0.1:$pm", route: metrics}
  - {name: echo-in, bind: "127.0.0.1:$pe", route: echo}
  - {name: guarded, bind: "127.0.0.1:$pg", route: guarded}
  - {name: limited, bind: "127.0.0.1:$pr", route: limited}
  - {name: backend, bind: "127.0.0.1:$pb", route: backend}
  - {name: front, bind: "127.0.0.1:$pf", route: proxied}
routes:
  - {name: metrics, pipeline: [{metrics: {}}]}
  - {name: echo, placement: round_robin, pipeline: [{echo: {}}]}
  - {name: guarded, pipeline: [{acl: {deny: ["127.0.0.0/8"]}}, {echo: {}}]}
  - {name: limited, pipeline: [{rate_limit: {per_source: 1/m, burst: 2}}, {echo: {}}]}
  - {name: backend, pipeline: [{echo: {}}]}
  - {name: proxied, pipeline: [{proxy: {upstream: back}}]}
CONF
}
write_conf 100
start_daemon "$tmp/conf.yaml"

jget() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
# lfield LISTENER FIELD: that field of the listener in a fresh `listeners` answer
lfield() {
	"$ctl" -s "$sock" --json listeners | python3 -c 'import json,sys
print([l for l in json.load(sys.stdin)["listeners"] if l["name"] == sys.argv[1]][0][sys.argv[2]])' "$1" "$2"
}
scrape() { curl -sS --max-time 5 "http://127.0.0.1:$pm/metrics"; }

# known traffic
"$load" --connect 127.0.0.1:$pe --conns 200 --concurrency 4 --size 500 >/dev/null || fail "echo load"
"$load" --connect 127.0.0.1:$pf --conns 20 --concurrency 2 --size 100 >/dev/null || fail "proxied load"
for _ in 1 2 3; do echo_ok TCP4:127.0.0.1:$pg && fail "acl let a client through"; done
passed=0
for _ in 1 2 3 4 5; do echo_ok TCP4:127.0.0.1:$pr && passed=$((passed + 1)); done
[ "$passed" = 2 ] || fail "rate_limit: $passed of 5 passed, want the burst of 2"
wait_until 30 eval '[ "$(jget "$("$ctl" -s "$sock" --json routes)" "sum(r[\"active\"] for r in j[\"routes\"] if r[\"name\"] != \"metrics\")")" = 0 ]' ||
	fail "sessions never closed"

# the text is strict Prometheus, and says what stats says
st=$("$ctl" -s "$sock" --json stats) || fail "stats: $st"
scrape >"$tmp/m1" || fail "GET /metrics"
python3 "$check" <"$tmp/m1" >"$tmp/m1.json" || fail "metrics text rejected: $(head -c 300 "$tmp/m1")"
python3 - "$st" "$tmp/m1.json" <<'PY' || fail "metrics and stats disagree"
import json, sys
st, m = json.loads(sys.argv[1]), json.load(open(sys.argv[2]))
def lab(v): return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
def need(key, want):
    got = m.get(key)
    if got != want:
        sys.exit(f"{key}: metrics {got}, stats {want}")
for l in st["listeners"]:
    if l["name"] == "prom":
        continue  # our own scrape moves it
    n = lab(l["name"])
    need(f'spargiod_listener_accepted_total{{listener="{n}"}}', l["accepted"])
    need(f'spargiod_listener_accept_errors_total{{listener="{n}"}}', l["accept_errors"])
    need(f'spargiod_listener_active_connections{{listener="{n}"}}', l["active"])
    for why in ("limit", "acl", "rate_limit"):
        need(f'spargiod_listener_refused_total{{listener="{n}",reason="{why}"}}', l["refused_" + why])
for r in st["routes"]:
    if r["name"] == "metrics":
        continue
    n = lab(r["name"])
    need(f'spargiod_route_sessions_total{{route="{n}"}}', r["sessions"])
    need(f'spargiod_route_active_sessions{{route="{n}"}}', r["active"])
    need(f'spargiod_route_denied_total{{route="{n}"}}', r["denied"])
    need(f'spargiod_route_errors_total{{route="{n}"}}', r["errors"])
    need(f'spargiod_route_bytes_total{{dir="in",route="{n}"}}', r["bytes_in"])
    need(f'spargiod_route_bytes_total{{dir="out",route="{n}"}}', r["bytes_out"])
    count = m[f'spargiod_route_session_duration_seconds_count{{route="{n}"}}']
    if count != r["sessions"]:
        sys.exit(f"{n}: {count} durations for {r['sessions']} ended sessions")
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in m.items()
                     if k.startswith('spargiod_route_session_duration_seconds_bucket{')
                     and f'route="{n}"' in k)
    for q, p in ((0.5, r["p50_us"]), (0.9, r["p90_us"]), (0.99, r["p99_us"]), (0.999, r["p999_us"])):
        if count == 0:
            if p is not None:
                sys.exit(f"{n}: a percentile without sessions")
            continue
        rank = max(1, -(-q * count // 1))
        # the rank-th duration lies between the last bound below rank and the first at it
        lo = max([round(b * 1e6) for b, c in buckets if c < rank], default=0)
        hi = min(round(b * 1e6) if b != float("inf") else b for b, c in buckets if c >= rank)
        if not lo <= p < hi:
            sys.exit(f"{n}: p{q} = {p} us outside its buckets [{lo}, {hi}) us")
for s in st["shards"]:  # counters only grow: the scrape came after stats
    for f in ("tasks_run", "tasks_spawned", "cqes", "msgs_sent", "steals"):
        key = f'spargiod_shard_{f}_total{{shard="{s["shard"]}"}}'
        if m[key] < s[f]:
            sys.exit(f"{key}: {m[key]} below stats' {s[f]}")
need("spargiod_generation{}", st["generation"])
def key(name, **labels):
    return name + "{" + ",".join(f'{k}="{lab(v)}"' for k, v in sorted(labels.items())) + "}"
for u in st["upstreams"]:
    for s in u["servers"]:
        sv = {"upstream": u["name"], "server": s["address"]}
        need(key("spargiod_upstream_server_active_connections", **sv), s["active"])
        need(key("spargiod_upstream_server_connections_total", **sv), s["total"])
        need(key("spargiod_upstream_server_connect_failures_total", **sv), s["connect_failures"])
        need(key("spargiod_upstream_server_checks_total", result="ok", **sv), s["checks_ok"])
        need(key("spargiod_upstream_server_checks_total", result="failed", **sv), s["checks_failed"])
        for state in ("up", "down", "disabled"):
            need(key("spargiod_upstream_server_state", state=state, **sv), int(s["state"] == state))
PY

# exact figures, and percentiles present and ordered
e='[r for r in j["routes"] if r["name"]=="echo"][0]'
[ "$(jget "$st" "$e['sessions']")" = 200 ] || fail "echo sessions: $st"
[ "$(jget "$st" "$e['bytes_in']")" = 100000 ] || fail "echo bytes_in: $st"
[ "$(jget "$st" "$e['errors']")" = 0 ] || fail "echo errors: $st"
[ "$(jget "$st" "0 < $e['p50_us'] <= $e['p90_us'] <= $e['p99_us'] <= $e['p999_us']")" = True ] ||
	fail "echo percentiles not ordered: $st"
[ "$(jget "$st" '[r for r in j["routes"] if r["name"]=="guarded"][0]["p50_us"]')" = None ] ||
	fail "a route without sessions has a percentile: $st"
L() { jget "$st" "[l for l in j['listeners'] if l['name']=='$1'][0]['$2']"; }
[ "$(L echo-in accepted)" = 200 ] && [ "$(L echo-in active)" = 0 ] || fail "echo listener: $st"
[ "$(L guarded refused_acl)" = 3 ] && [ "$(L guarded refused_rate_limit)" = 0 ] &&
	[ "$(L guarded accepted)" = 3 ] || fail "guarded listener: $st"
[ "$(L limited refused_rate_limit)" = 3 ] && [ "$(L limited refused_acl)" = 0 ] || fail "limited: $st"
[ "$(L echo-in refused_limit)" = 0 ] || fail "refused_limit before any limit: $st"
[ "$(jget "$st" '[(s["total"], s["state"]) for s in j["upstreams"][0]["servers"]]')" = "[(20, 'up')]" ] ||
	fail "upstream server: $st"
grep -q '^spargiod_listener_refused_total{listener="guarded",reason="acl"} 3$' "$tmp/m1" ||
	fail "no refused line: $(grep refused "$tmp/m1")"

# HTTP: status codes, HEAD, keep-alive, pipelining, a bad request closed
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$pm/other")" = 404 ] || fail "no 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$pm/metrics")" = 405 ] || fail "no 405"
head=$(curl -sS -I "http://127.0.0.1:$pm/metrics") || fail "HEAD"
grep -q '^Content-Type: text/plain; version=0.0.4; charset=utf-8' <<<"$head" || fail "content type: $head"
grep -q '^Content-Length: [1-9]' <<<"$head" || fail "HEAD without a length: $head"
n=$(curl -sS -o /dev/null -o /dev/null -w '%{num_connects}\n' "http://127.0.0.1:$pm/metrics" "http://127.0.0.1:$pm/metrics" | awk '{n += $1} END {print n}')
[ "$n" = 1 ] || fail "keep-alive: $n connections for two requests"
python3 - "$pm" <<'PY' || fail "raw HTTP checks"
import socket, sys
port = int(sys.argv[1])
def talk(data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b
# two pipelined requests, the second closing: two answers, then the end
two = talk(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
if two.count(b"HTTP/1.1 ") != 2 or b"HTTP/1.1 404 Not Found" not in two:
    sys.exit(f"pipelining: {two[:200]!r}")
bad = talk(b"GET /metrics HTTP/1.1\nHost: a\n\n")
if not bad.startswith(b"HTTP/1.1 400 Bad Request\r\n") or b"Connection: close" not in bad:
    sys.exit(f"bare LF: {bad!r}")
junk = talk(b"\x00\x01\x02 hello\r\n\r\n")
if not junk.startswith(b"HTTP/1.1 400"):
    sys.exit(f"junk: {junk!r}")
PY
scrape | python3 "$check" >/dev/null || fail "metrics after hostile requests"

# at max_connections: a reload lowers the limit under the open sessions; the next clients
# wait in the backlog (none is accepted to be refused: refused_limit stays 0) and are
# served once sessions end
for i in 1 2 3; do
	socat -u "EXEC:sleep 30" TCP4:127.0.0.1:$pe &
	eval "hold$i=\$!"
	started_pids+=("$!")
done
wait_until 30 eval '[ "$(lfield echo-in active)" = 3 ]' || fail "three held sessions"
write_conf 2
out=$("$ctl" -s "$sock" reload) || fail "reload: $out"
echo_ok TCP4:127.0.0.1:$pe && fail "served past max_connections"
wait_until 30 log_has "max_connections (2) reached: accepting paused" || fail "no pause"
(echo waiting; sleep 10) | timeout 15 socat - TCP4:127.0.0.1:$pe >"$tmp/waiter" &
started_pids+=("$!")
[ "$(lfield echo-in refused_limit)" = 0 ] || fail "refused_limit at the limit: $(lfield echo-in refused_limit)"
kill "$hold1" "$hold2"
wait_until 30 grep -q waiting "$tmp/waiter" || fail "the waiting client was not served after the limit"
[ "$(lfield echo-in refused_limit)" = 0 ] || fail "refused_limit moved for a client that waited"
kill "$hold3" 2>/dev/null
wait_until 30 eval 'scrape 2>/dev/null | grep -q "^spargiod_listener_refused_total{listener=\"echo-in\",reason=\"limit\"} 0\$"' ||
	fail "metrics show a refusal at the limit: $(scrape | grep refused)"

stop_daemon TERM
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: metrics (strict Prometheus text equal to stats incl. upstream servers, percentiles in their buckets, refused acl/rate_limit exact, none at the limit, 404/405/HEAD/keep-alive/pipelining/400)"
