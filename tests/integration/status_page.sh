#!/bin/bash
# status_page.sh - the `status` handler in a real browser: with traffic going through a
# proxy route (connections held open and a bounded paced load), headless Chromium loads
# the page from the daemon and runs it for real (status_cdp.py, over the DevTools
# protocol); the live DOM must show the listeners, routes, upstream servers (one up, one
# disabled by `spargioctl server disable`) and shards of /status.json, refreshed several
# times without a reload, with the held connections counted and the accepted count equal
# to the JSON's, charts drawn, and no error in the console (the page's CSP forbids
# anything but its own status.json). /status.json is the JSON of `spargioctl --json
# stats`. HTTP: GET and HEAD of / and /status.json only; other methods 405 (closed),
# other paths 404. SP_STATUS_SCREENSHOT=FILE also saves a screenshot (doc/status-page.png),
# SP_STATUS_SECONDS (6) into the load.
. "$(dirname "$0")/lib.sh"
ctl=${BUILDDIR:-.}/spargioctl
sock=$tmp/control.sock
cdp=$(dirname "$0")/status_cdp.py

ps_=$(free_port); pb=$(free_port); pf=$(free_port); pdead=$(free_port)
cat >"$tmp/conf.yaml" <<CONF
version: 1
engine: {shards: 2}
control: {socket: "$sock"}
log: {access_log: false}
upstreams:
  - {name: back, servers: [{address: "127.0.0.1:$pb"}, {address: "127.0.0.1:$pdead"}]}
listeners:
  - {name: status, bind: "127.0.0.1:$ps_", route: status}
  - {name: backend, bind: "127.0.0.1:$pb", route: backend}
  - {name: front, bind: "127.0.0.1:$pf", route: proxied}
routes:
  - {name: status, pipeline: [{acl: {allow: ["127.0.0.0/8"]}}, {status: {}}]}
  - {name: backend, pipeline: [{echo: {}}]}
  - {name: proxied, placement: round_robin, pipeline: [{proxy: {upstream: back}}]}
CONF
start_daemon "$tmp/conf.yaml"
url=http://127.0.0.1:$ps_

# --- HTTP: what is served, and nothing else ---------------------------------------------
code() { curl -sS --max-time 5 -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' "$@"; }
[ "$(code "$url/")" = 200 ] || fail "GET / did not answer 200"
grep -qi '^content-type: text/html' "$tmp/head" || fail "GET /: not text/html"
grep -q '<script>' "$tmp/body" && grep -q 'status.json' "$tmp/body" || fail "GET /: not the page"
# self-contained: nothing loaded from elsewhere (no src=, no link but the empty icon)
grep -Eiq '(src|href)="?(https?:)?//|@import|url\(' "$tmp/body" && fail "the page loads something from elsewhere"
grep -qi "^content-security-policy: default-src 'none'" "$tmp/head" || fail "GET /: no CSP"
[ "$(code "$url/status.json?x=1")" = 200 ] || fail "GET /status.json did not answer 200"
grep -qi '^content-type: application/json' "$tmp/head" || fail "/status.json: not JSON"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["ok"] and j["generation"] == 1' "$tmp/body" ||
	fail "/status.json is not the stats JSON"
# HEAD: the same header, no body (HTTP/1.0: the answer ends with the connection)
printf 'HEAD / HTTP/1.0\r\n\r\n' | timeout 5 socat - "TCP4:127.0.0.1:$ps_" >"$tmp/headans"
python3 -c 'import sys; a = open(sys.argv[1], "rb").read(); h, _, b = a.partition(b"\r\n\r\n")
sys.exit(not (h.startswith(b"HTTP/1.1 200 ") and b"Content-Length: " in h and b == b""))' "$tmp/headans" ||
	fail "HEAD / answered a body or not 200: $(head -c 300 "$tmp/headans")"
for m in POST PUT DELETE PATCH OPTIONS; do
	for p in / /status.json; do
		[ "$(code -X "$m" "$url$p")" = 405 ] || fail "$m $p was not refused with 405"
		grep -qi '^allow: GET, HEAD' "$tmp/head" && grep -qi '^connection: close' "$tmp/head" ||
			fail "$m $p: 405 without Allow or not closed"
	done
done
for p in /metrics /index.html /status /status.json/x //status.json; do
	[ "$(code "$url$p")" = 404 ] || fail "GET $p was not 404"
done

chromium=$(command -v chromium || command -v chromium-browser) ||
	skip "chromium not installed (apt-get install chromium): the page itself is not tested"

# --- traffic through the proxy route: held connections and a bounded paced load --------
"$ctl" -s "$sock" server disable back "127.0.0.1:$pdead" >/dev/null || fail "server disable"
# held open by one client process (ended by its PID), 300 s at most; with them one silent
# connection to the page, as a browser's spare one: it must end at the head timeout
# (10 s) as a clean close, not an error
held=3
python3 -c 'import socket,sys,time
s = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
s.append(socket.create_connection(("127.0.0.1", int(sys.argv[3]))))
time.sleep(300)' "$pf" "$held" "$ps_" </dev/null >/dev/null 2>&1 &
holder=$!
started_pids+=("$holder")
wait_until 30 eval '[ "$("$ctl" -s "$sock" --json listeners | python3 -c "import json,sys
print([l for l in json.load(sys.stdin)[\"listeners\"] if l[\"name\"] == \"front\"][0][\"active\"])")" = '$held' ]' ||
	fail "the $held held connections are not all active"
(
	for _ in $(seq 60); do # bounded: 60 rounds of 8 connections, 0.1 s apart
		"$load" --connect "127.0.0.1:$pf" --conns 8 --concurrency 2 --size 200 --max-seconds 20 >/dev/null || exit 1
		sleep 0.1
	done
	touch "$tmp/load-done"
) &
loader=$!
started_pids+=("$loader")

# --- the page in headless Chromium --------------------------------------------------------
timeout 300 python3 "$cdp" "$chromium" "$url/" "${SP_STATUS_SECONDS:-6}" "$tmp/load-done" "$tmp/dom.json" \
	${SP_STATUS_SCREENSHOT:+"$SP_STATUS_SCREENSHOT"} || fail "headless chromium: loading the page failed"
wait "$loader" || fail "the load through the proxy failed"
# the silent connection to the page has had its 10 s (the load and the page took longer)
wait_until 30 eval '[ "$("$ctl" -s "$sock" --json routes | python3 -c "import json,sys
print([r for r in json.load(sys.stdin)[\"routes\"] if r[\"name\"] == \"status\"][0][\"active\"])")" = 0 ]' ||
	fail "a silent connection to the page was never closed"
curl -sS --max-time 5 "$url/status.json" >"$tmp/status.json" || fail "GET /status.json"
"$ctl" -s "$sock" --json stats >"$tmp/stats.json" || fail "spargioctl --json stats"

python3 - "$tmp/dom.json" "$tmp/status.json" "$tmp/stats.json" "$held" "$pb" "$pdead" <<'PY' || fail "the page or the JSON is wrong (above)"
import json, sys
dom, js, st = (json.load(open(f)) for f in sys.argv[1:4])
held, pb, pdead = int(sys.argv[4]), sys.argv[5], sys.argv[6]
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
n = lambda s: int(s.replace(",", ""))

check(dom["title"] == "spargiod status", "title")
check(dom["updates"] >= 4, f"the page refreshed {dom['updates']} times, want 4 or more")
check(not dom["errors"], f"console errors: {dom['errors']}")
check(dom["header"]["generation"] == "1", "generation in the header")
check(dom["header"]["livetext"].startswith("live"), "the page does not say it is live")
# listeners: the same names, in order; the proxied one with its figures
names = [l["name"] for l in js["listeners"]]
check([r["name"] for r in dom["tables"]["listeners"]] == names, f"listener rows {dom['tables']['listeners']}")
dl = {r["name"]: r for r in dom["tables"]["listeners"]}
jl = {l["name"]: l for l in js["listeners"]}
front = dl.get("front", {})
check(n(front.get("active", "0")) == held == jl["front"]["active"], f"front active: page {front.get('active')}, json {jl['front']['active']}, held {held}")
check(n(front.get("accepted", "0")) == jl["front"]["accepted"] >= held + 480,
      f"front accepted: page {front.get('accepted')}, json {jl['front']['accepted']}")
check(front.get("state") == "accepting", "front state")
# routes
dr = {r["name"]: r for r in dom["tables"]["routes"]}
jr = {r["name"]: r for r in js["routes"]}
check(sorted(dr) == sorted(jr), "route rows")
p = dr.get("proxied", {})
check(n(p.get("sessions", "0")) == jr["proxied"]["sessions"] > 0, "proxied sessions")
check(p.get("pipeline") == "proxy" and p.get("errors") == "0", f"proxied row {p}")
check(all(p.get(k, "\u2013") != "\u2013" for k in ("p50_us", "p90_us", "p99_us")), f"proxied percentiles {p}")
# upstream servers: the live one up, the other disabled
ups = dom["upstreams"].get("back", [])
states = {r["address"]: r["state"] for r in ups}
check(states == {f"127.0.0.1:{pb}": "up", f"127.0.0.1:{pdead}": "disabled"}, f"server states {states}")
live = [r for r in ups if r["address"].endswith(pb)]
js_live = [s for s in js["upstreams"][0]["servers"] if s["address"].endswith(pb)][0]
check(live and n(live[0]["total"]) == js_live["total"] and n(live[0]["active"]) == held, f"live server row {live}")
# shards: one row each, with the engine's figures
rows = dom["tables"]["shards"]
check([r["shard"] for r in rows] == ["#%d" % s["shard"] for s in js["shards"]], f"shard rows {rows}")
check(all(n(r["cqes"]) > 0 and n(r["tasks_run"]) > 0 for r in rows), "shard counters")
# charts drawn from the history kept in the page
check(all(v >= 1 for v in dom["charts"].values()) and len(dom["charts"]) == 3, f"charts {dom['charts']}")

# /status.json is `spargioctl --json stats`: same keys everywhere; the figures that did not
# move between the two reads (all but the status listener's own, uptime, shard counters) equal
check(sorted(js) == sorted(list(st) + ["uptime_s"]), f"top-level keys {sorted(js)} vs {sorted(st)}")
check(0 < js["uptime_s"] < 3600, "uptime_s")
check(js["generation"] == st["generation"], "generation")
strip = lambda l: [x for x in l if x["name"] != "status"]
check(strip(js["listeners"]) == strip(st["listeners"]), "listeners differ")
check(strip(js["routes"]) == strip(st["routes"]), "routes differ")
check(js["upstreams"] == st["upstreams"], "upstreams differ")
# the status route's errors are the 10 refused methods above, not the silent connection
# nor the browser's own spare connections
sr = [r for r in st["routes"] if r["name"] == "status"][0]
check(sr["errors"] == 10, f"status route errors {sr['errors']}, want the 10 refusals")
check([sorted(s) for s in js["shards"]] == [sorted(s) for s in st["shards"]], "shard keys differ")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "page: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["updates"])' "$tmp/dom.json") live updates checked"
kill "$holder" && wait "$holder" 2>/dev/null
wait_until 30 eval '[ "$("$ctl" -s "$sock" --json status | python3 -c "import json,sys; print(json.load(sys.stdin)[\"connections\"])")" = 0 ]' ||
	fail "the held connections never closed"
stop_daemon
[ "$rc" = 0 ] || fail "spargiod exited $rc"
echo PASS
