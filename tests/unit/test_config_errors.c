/* SPDX-License-Identifier: MIT */
/* test_config_errors.c - invalid configs: each class of error with its exact
 * FILE:LINE:COL and wording, every error of a file reported in file order, the cap on
 * kept errors, and hostile input (alias bombs, deep nesting, huge scalars, binary)
 * refused quickly. */
#include "config_harness.h"

#define V1 "version: 1\n"

START_TEST(test_unknown_keys)
{
	expect_errors(V1 "engine:\n"
			 "  ring_entries: 8\n"
			 "  shrads: 4\n",
		      "t.yaml:4:3: unknown key 'shrads' in 'engine' (did you mean 'shards'?)", NULL);
	expect_errors(V1 "engin: {}\n"
			 "listeners: []\n"
			 "xyzzy: 1\n",
		      "t.yaml:2:1: unknown key 'engin' in the top level (did you mean 'engine'?)",
		      "t.yaml:4:1: unknown key 'xyzzy' in the top level", NULL);
	expect_errors(V1 "upstreams:\n"
			 "  - name: a\n"
			 "    servers: [{adress: \"127.0.0.1:1\"}]\n"
			 "    retires: 2\n"
			 "    tsl: {}\n",
		      "t.yaml:4:15: missing required key 'address' in a server",
		      "t.yaml:4:16: unknown key 'adress' in a server (did you mean 'address'?)",
		      "t.yaml:5:5: unknown key 'retires' in an upstream (did you mean 'retries'?)",
		      "t.yaml:6:5: unknown key 'tsl' in an upstream (did you mean 'tls'?)", NULL);
	expect_errors(V1 "routes: [{name: r, pipeline: [{echo: {x: 1}}]}]\n",
		      "t.yaml:2:39: unknown key 'x' in 'echo'", NULL);
}
END_TEST

START_TEST(test_duplicate_keys_and_names)
{
	expect_errors(V1 "log: {level: info, level: debug}\n",
		      "t.yaml:2:20: duplicate key 'level' in 'log' (first at 2:7)", NULL);
	expect_errors(V1 "upstreams:\n"
			 "  - {name: a, servers: [\"127.0.0.1:1\", \"127.0.0.1:1\"]}\n"
			 "  - {name: a, servers: [\"127.0.0.1:2\"]}\n"
			 "routes:\n"
			 "  - {name: r, pipeline: [echo]}\n"
			 "  - {name: r, pipeline: [echo]}\n"
			 "listeners:\n"
			 "  - {name: l, bind: \"127.0.0.1:80\", route: r}\n"
			 "  - {name: l, bind: \"127.0.0.1:80\", route: r}\n"
			 "  - {name: m, bind: \"127.0.0.1:80\", route: d, protocol: udp}\n"
			 "  - {name: n, bind: \"127.0.0.1:0\", route: r}\n"
			 "  - {name: o, bind: \"127.0.0.1:0\", route: r}\n",
		      "t.yaml:3:40: duplicate server '127.0.0.1:1' (first defined at 3:25)",
		      "t.yaml:4:12: duplicate upstream 'a' (first defined at 3:12)",
		      "t.yaml:7:12: duplicate route 'r' (first defined at 6:12)",
		      "t.yaml:10:12: duplicate listener 'l' (first defined at 9:12)",
		      "t.yaml:10:21: duplicate bind 'tcp 127.0.0.1:80' (first defined at 9:21)",
		      "t.yaml:11:44: unknown route 'd'", NULL);
}
END_TEST

/* Binds the kernel refuses together, written differently: a wildcard beside an address
 * on one TCP port (either order, IPv6 wildcard over IPv4 too), and unix paths naming
 * one file; udp, other ports and [::1] beside 127.0.0.1 are fine. */
START_TEST(test_binds_overlap)
{
	expect_errors(V1 "routes: [{name: r, pipeline: [echo]}, {name: u, pipeline: [{udp_proxy: {upstream: x}}]}]\n"
			 "upstreams: [{name: x, servers: [\"127.0.0.1:9\"]}]\n"
			 "control: {socket: /run/s/../s/c.sock}\n"
			 "listeners:\n"
			 "  - {name: a, bind: \"127.0.0.1:7100\", route: r}\n"
			 "  - {name: b, bind: \"0.0.0.0:7100\", route: r}\n"
			 "  - {name: c, bind: \"[::]:7101\", route: r}\n"
			 "  - {name: d, bind: \"127.0.0.2:7101\", route: r}\n"
			 "  - {name: e, bind: \"[::1]:7102\", route: r}\n"
			 "  - {name: f, bind: \"127.0.0.1:7102\", route: r}\n"
			 "  - {name: g, bind: \"0.0.0.0:7103\", route: u, protocol: udp}\n"
			 "  - {name: h, bind: \"127.0.0.1:7103\", route: u, protocol: udp}\n"
			 "  - {name: i, bind: \"[::ffff:127.0.0.1]:7104\", route: r}\n"
			 "  - {name: j, bind: \"0.0.0.0:7104\", route: r}\n"
			 "  - {name: k, bind: \"[::]:7105\", route: r}\n"
			 "  - {name: l, bind: \"[::1]:7105\", route: r}\n"
			 "  - {name: m, bind: \"unix:/x/u1.sock\", route: r}\n"
			 "  - {name: n, bind: \"unix:/x/./u1.sock\", route: r}\n"
			 "  - {name: o, bind: \"unix://x//u1.sock\", route: r}\n"
			 "  - {name: p, bind: \"unix:/run/s/../s/./c.sock\", route: r}\n"
			 "  - {name: q, bind: \"127.0.0.1:0\", route: r}\n"
			 "  - {name: s, bind: \"0.0.0.0:0\", route: r}\n",
		      "t.yaml:7:21: bind '0.0.0.0:7100' of listener 'b' cannot be bound beside "
		      "'127.0.0.1:7100' of listener 'a' (at 6:21): 0.0.0.0:7100 takes TCP port 7100 "
		      "on every address",
		      "t.yaml:9:21: bind '127.0.0.2:7101' of listener 'd' cannot be bound beside "
		      "'[::]:7101' of listener 'c' (at 8:21): [::]:7101 takes TCP port 7101 on every "
		      "address (IPv4 too: listeners are dual-stack)",
		      "t.yaml:15:21: bind '0.0.0.0:7104' of listener 'j' cannot be bound beside "
		      "'[::ffff:127.0.0.1]:7104' of listener 'i' (at 14:21): 0.0.0.0:7104 takes TCP "
		      "port 7104 on every address",
		      "t.yaml:17:21: bind '[::1]:7105' of listener 'l' cannot be bound beside "
		      "'[::]:7105' of listener 'k' (at 16:21): [::]:7105 takes TCP port 7105 on every "
		      "address (IPv4 too: listeners are dual-stack)",
		      "t.yaml:19:21: duplicate bind 'tcp unix:/x/u1.sock' (first defined at 18:21)",
		      "t.yaml:20:21: duplicate bind 'tcp unix:/x/u1.sock' (first defined at 18:21)",
		      "t.yaml:21:21: listener 'p' binds the control socket's path /run/s/../s/c.sock",
		      NULL);
}
END_TEST

START_TEST(test_type_errors)
{
	expect_errors(V1 "engine:\n"
			 "  ring_entries: lots\n"
			 "  steal: 1\n"
			 "  shards: [1]\n"
			 "  pin_cpus: \"true\"\n"
			 "limits: [1, 2]\n"
			 "control: {socket: 12}\n"
			 "upstreams: {name: a}\n",
		      "t.yaml:3:17: expected an integer for 'ring_entries', found a string (\"lots\")",
		      "t.yaml:4:10: expected true or false for 'steal', found an integer (1)",
		      "t.yaml:5:11: expected an integer or auto for 'shards', found a sequence",
		      "t.yaml:6:13: expected true or false for 'pin_cpus', found a string (\"true\")",
		      "t.yaml:7:9: expected a mapping for 'limits', found a sequence",
		      "t.yaml:8:19: 'socket' must be an absolute path (found '12')",
		      "t.yaml:9:12: expected a sequence for 'upstreams', found a mapping", NULL);
	expect_errors("- version: 1\n",
		      "t.yaml:1:1: expected a mapping of sections (version, engine, listeners, "
		      "routes...) at the top level, found a sequence",
		      NULL);
	expect_errors(V1 "process: {user: ~, group: \"\"}\n",
		      "t.yaml:2:17: expected a user or group name for 'user', found null",
		      "t.yaml:2:27: 'group' must not be empty", NULL);
	expect_errors(V1 "routes: [{name: r, pipeline: [{files: /srv}]}]\n",
		      "t.yaml:2:39: expected a mapping for 'files', found a string (\"/srv\")", NULL);
}
END_TEST

START_TEST(test_ranges_and_values)
{
	expect_errors(V1 "engine: {ring_entries: 100, shards: 0, idle_spin_us: -1}\n"
			 "control: {mode: \"1777\"}\n"
			 "log: {level: verbose, target: syslog}\n"
			 "limits: {max_connections: 99999999999, drain_timeout: 30}\n",
		      "t.yaml:2:24: 'ring_entries' must be a power of two (found 100)",
		      "t.yaml:2:37: 'shards' must be from 1 to 1024 (found 0)",
		      "t.yaml:2:54: 'idle_spin_us' must be from 0 to 1000000 (found -1)",
		      "t.yaml:3:17: invalid mode '1777' (only permission bits, at most 0777)",
		      "t.yaml:4:14: invalid value 'verbose' for 'level': expected error, warn, info "
		      "or debug",
		      "t.yaml:4:31: invalid value 'syslog' for 'target': expected auto, stderr or "
		      "journal",
		      "t.yaml:5:27: 'max_connections' must be from 1 to 16777216 (found 99999999999)",
		      "t.yaml:5:55: invalid duration '30' for 'drain_timeout' (expected a number and "
		      "a unit: 250ms, 2s, 5m, 1h)",
		      NULL);
	expect_errors(V1 "limits: {per_source: 70000}\n"
			 "listeners: [{name: l, bind: \"127.0.0.1:1\", route: r, max_connections: 0, "
			 "per_source: -1}]\n"
			 "routes: [{name: r, pipeline: [{echo: {}}]}]\n",
		      "t.yaml:2:22: 'per_source' must be from 0 to 65535 (found 70000)",
		      "t.yaml:3:71: 'max_connections' must be from 1 to 16777216 (found 0)",
		      "t.yaml:3:86: 'per_source' must be from 0 to 65535 (found -1)", NULL);
	expect_errors(V1 "version: 2\n",
		      "t.yaml:2:1: duplicate key 'version' in the top level (first at 1:1)", NULL);
	expect_errors("version: 2\n",
		      "t.yaml:1:10: unsupported schema version 2 (this spargiod reads version 1)",
		      NULL);
	expect_errors("engine: {}\n",
		      "t.yaml:1:1: missing required key 'version' at the top level (this is schema "
		      "version 1: add 'version: 1')",
		      NULL);
	expect_errors(V1 "upstreams:\n"
			 "  - name: a\n"
			 "    balance: round-robin\n"
			 "    connect_timeout: 0ms\n"
			 "    servers: [{address: \"127.0.0.1:1\", weight: 257}]\n"
			 "    health_check: {interval: 1s, timeout: 2s, fall: 0}\n"
			 "  - name: \"b c\"\n"
			 "    servers: []\n",
		      "t.yaml:4:14: invalid value 'round-robin' for 'balance': expected round_robin, "
		      "least_conn, source_hash or random_two (did you mean 'round_robin'?)",
		      "t.yaml:5:22: 'connect_timeout' must be at least 1ms (found 0ms)",
		      "t.yaml:6:48: 'weight' must be from 1 to 256 (found 257)",
		      "t.yaml:7:43: the health check timeout (2000ms) is longer than its interval "
		      "(1000ms)",
		      "t.yaml:7:53: 'fall' must be from 1 to 100 (found 0)",
		      "t.yaml:8:11: invalid name 'b c' (1 to 64 letters, digits, '_', '.' or '-')",
		      "t.yaml:9:14: 'servers' must list at least one server", NULL);
}
END_TEST

START_TEST(test_addresses_and_cidrs)
{
	expect_errors(V1 "upstreams:\n"
			 "  - name: a\n"
			 "    servers:\n"
			 "      - localhost:80\n"
			 "      - \"::1:80\"\n"
			 "      - \"[::1]\"\n"
			 "      - \"1.2.3.4:99999\"\n"
			 "      - systemd:x\n"
			 "      - \"1.2.3.4:0\"\n"
			 "      - unix:relative\n",
		      "t.yaml:5:9: invalid address 'localhost:80' for 'address': host names are not "
		      "resolved; use a numeric address (127.0.0.1)",
		      "t.yaml:6:9: invalid address '::1:80' for 'address': an IPv6 address needs "
		      "brackets: [::1]:8080",
		      "t.yaml:7:9: invalid address '[::1]' for 'address': missing port after ']'",
		      "t.yaml:8:9: invalid address '1.2.3.4:99999' for 'address': the port must be a "
		      "number from 0 to 65535",
		      "t.yaml:9:9: a server address is host:port or unix:/path, not a systemd socket",
		      "t.yaml:10:9: a server address needs a port other than 0",
		      "t.yaml:11:9: invalid address 'unix:relative' for 'address': a unix socket path "
		      "must be absolute (unix:/run/x.sock) or abstract (unix:@name)",
		      NULL);
	expect_errors(V1 "routes:\n"
			 "  - name: r\n"
			 "    pipeline:\n"
			 "      - acl: {allow: [\"10.0.0.1/8\", \"::1/129\", \"1.2.3/24\", x],\n"
			 "              deny: \"10.0.0.0/8\"}\n"
			 "      - acl: {}\n"
			 "      - echo\n",
		      "t.yaml:5:23: invalid CIDR '10.0.0.1/8' in 'allow': bits are set past the prefix "
		      "length (did you mean '10.0.0.0/8'?)",
		      "t.yaml:5:37: invalid CIDR '::1/129' in 'allow': the prefix length must be from "
		      "0 to 128",
		      "t.yaml:5:48: invalid CIDR '1.2.3/24' in 'allow': invalid IPv4 address",
		      "t.yaml:5:60: invalid CIDR 'x' in 'allow': invalid IPv4 address",
		      "t.yaml:6:21: expected a sequence for 'deny', found a string (\"10.0.0.0/8\")",
		      "t.yaml:7:14: 'acl' needs 'allow', 'deny' or both", NULL);
}
END_TEST

START_TEST(test_required_keys)
{
	expect_errors(V1 "upstreams: [{}]\n"
			 "listeners:\n"
			 "  - protocol: tcp\n"
			 "routes:\n"
			 "  - name: r\n"
			 "  - name: s\n"
			 "    pipeline:\n"
			 "      - rate_limit: {burst: 3}\n"
			 "      - proxy:\n"
			 "  - {name: t, pipeline: [{files: {index: x.html}}]}\n"
			 "  - {name: u, pipeline: [{exec: {stdio: pipe}}]}\n"
			 "  - {name: v, pipeline: [{udp_proxy: {}}]}\n",
		      "t.yaml:2:13: missing required key 'name' in an upstream",
		      "t.yaml:2:13: missing required key 'servers' in an upstream",
		      "t.yaml:4:5: missing required key 'name' in a listener",
		      "t.yaml:4:5: missing required key 'bind' in a listener",
		      "t.yaml:4:5: missing required key 'route' in a listener",
		      "t.yaml:6:5: missing required key 'pipeline' in a route",
		      "t.yaml:9:21: missing required key 'per_source' in 'rate_limit'",
		      "t.yaml:10:9: missing required key 'upstream' in 'proxy'",
		      "t.yaml:11:34: missing required key 'root' in 'files'",
		      "t.yaml:12:33: missing required key 'command' in 'exec'",
		      "t.yaml:13:38: missing required key 'upstream' in 'udp_proxy'", NULL);
}
END_TEST

START_TEST(test_references)
{
	expect_errors(V1 "upstreams: [{name: app, servers: [\"127.0.0.1:1\"]}]\n"
			 "listeners:\n"
			 "  - {name: l, bind: \"127.0.0.1:80\", route: statik}\n"
			 "  - {name: m, bind: \"127.0.0.1:81\", route: zzz}\n"
			 "routes:\n"
			 "  - name: static\n"
			 "    pipeline: [{proxy: {upstream: ap}}]\n"
			 "  - name: u\n"
			 "    pipeline: [{udp_proxy: {upstream: nothing}}]\n",
		      "t.yaml:4:44: unknown route 'statik' (did you mean 'static'?)",
		      "t.yaml:5:44: unknown route 'zzz'",
		      "t.yaml:8:35: unknown upstream 'ap' (did you mean 'app'?)",
		      "t.yaml:10:39: unknown upstream 'nothing'", NULL);
	expect_errors(V1 "routes: [{name: p, pipeline: [{proxy: {upstream: a}}]}]\n",
		      "t.yaml:2:50: unknown upstream 'a' (no upstream is defined)", NULL);
}
END_TEST

START_TEST(test_pipelines)
{
	expect_errors(V1 "routes:\n"
			 "  - name: a\n"
			 "    pipeline: [acl: {allow: [\"::/0\"]}]\n"
			 "  - name: b\n"
			 "    pipeline: []\n"
			 "  - name: c\n"
			 "    pipeline: [echo, metrics]\n"
			 "  - name: d\n"
			 "    pipeline: [proxi: {}]\n"
			 "  - name: e\n"
			 "    pipeline:\n"
			 "      - proxy:\n"
			 "        upstream: x\n"
			 "  - name: f\n"
			 "    pipeline: [42, [echo]]\n"
			 "  - name: g\n"
			 "    pipeline: [teleport]\n",
		      "t.yaml:4:15: the pipeline has no handler: it must end with one of echo, proxy, "
		      "files, exec, udp_proxy, metrics or status",
		      "t.yaml:6:15: the pipeline of a route needs at least its handler",
		      "t.yaml:8:22: a second handler 'metrics' (the pipeline already ends with 'echo' "
		      "at 8:16; exactly one handler, last)",
		      "t.yaml:10:16: unknown stage 'proxi' (did you mean 'proxy'?)",
		      "t.yaml:13:9: a stage is one key, its name, with its options under it (- proxy: "
		      "{upstream: app}); this one has 2 keys (are the options indented under the "
		      "stage name?)",
		      "t.yaml:16:16: unknown stage '42' (filters: acl, rate_limit; handlers: echo, "
		      "proxy, files, exec, udp_proxy, metrics, status)",
		      "t.yaml:16:20: expected a stage (- NAME: {options}) for 'pipeline', found a "
		      "sequence",
		      "t.yaml:18:16: unknown stage 'teleport' (filters: acl, rate_limit; handlers: "
		      "echo, proxy, files, exec, udp_proxy, metrics, status)",
		      NULL);
}
END_TEST

START_TEST(test_protocol_fit)
{
	expect_errors(V1 "upstreams:\n"
			 "  - {name: dns, servers: [\"127.0.0.1:53\"]}\n"
			 "  - {name: t, servers: [unix:/x], tls: {}}\n"
			 "listeners:\n"
			 "  - {name: u, bind: \"127.0.0.1:53\", protocol: udp, route: web}\n"
			 "  - {name: t, bind: \"127.0.0.1:80\", route: dns}\n"
			 "  - name: v\n"
			 "    bind: unix:/run/x.sock\n"
			 "    protocol: udp\n"
			 "    proxy_protocol: true\n"
			 "    tls: {cert: /c, key: /k}\n"
			 "    route: dns\n"
			 "routes:\n"
			 "  - {name: web, pipeline: [echo]}\n"
			 "  - {name: dns, pipeline: [{udp_proxy: {upstream: dns}}]}\n"
			 "  - {name: bad, pipeline: [{udp_proxy: {upstream: t}}]}\n",
		      "t.yaml:6:59: listener 'u' is udp, but route 'web' ends in 'echo': a udp "
		      "listener needs a route whose handler is udp_proxy",
		      "t.yaml:7:44: listener 't' is tcp, but route 'dns' ends in 'udp_proxy', which "
		      "serves udp listeners only",
		      "t.yaml:9:11: a udp listener binds host:port or systemd:NAME, not a unix socket",
		      "t.yaml:11:21: 'proxy_protocol' is for tcp listeners only",
		      "t.yaml:12:10: 'tls' is for tcp listeners only (DTLS is not supported)",
		      "t.yaml:17:51: upstream 't' has 'tls', which udp_proxy cannot use",
		      "t.yaml:17:51: upstream 't' has a unix socket server; udp_proxy needs host:port "
		      "servers",
		      NULL);
}
END_TEST

START_TEST(test_stage_options)
{
	expect_errors(V1 "upstreams: [{name: u, servers: [\"127.0.0.1:1\"]}]\n"
			 "routes:\n"
			 "  - name: a\n"
			 "    pipeline:\n"
			 "      - rate_limit: {per_source: 100, burst: 0}\n"
			 "      - rate_limit: {per_source: 0/s}\n"
			 "      - proxy: {upstream: u, send_proxy_protocol: v3, idle_timeout: 5 s, "
			 "notsent_lowat: 1x}\n"
			 "  - name: b\n"
			 "    pipeline:\n"
			 "      - files: {root: /srv, index: ../x}\n"
			 "  - name: c\n"
			 "    pipeline:\n"
			 "      - exec: {command: [cat], env: {1X: a, OK: [b], OK2: c, OK2: d},\n"
			 "               stdio: tty, user: \"a:b\", timeout: 1y}\n"
			 "  - name: d\n"
			 "    pipeline: [{exec: {command: []}}]\n",
		      "t.yaml:6:34: invalid rate '100' for 'per_source' (expected COUNT/s, COUNT/m or "
		      "COUNT/h, like 100/s)",
		      "t.yaml:6:46: 'burst' must be from 1 to 1000000000 (found 0)",
		      "t.yaml:7:34: invalid rate '0/s' for 'per_source' (expected COUNT/s, COUNT/m or "
		      "COUNT/h, like 100/s)",
		      "t.yaml:8:51: invalid value 'v3' for 'send_proxy_protocol': expected off, v1 or "
		      "v2 (did you mean 'v1'?)",
		      "t.yaml:8:69: invalid duration '5 s' for 'idle_timeout' (expected a number and "
		      "a unit: 250ms, 2s, 5m, 1h)",
		      "t.yaml:8:89: invalid size '1x' for 'notsent_lowat' (0KiB to 65536KiB, like 8KiB)",
		      "t.yaml:11:36: 'index' is a file name, without '/'",
		      "t.yaml:14:26: the program of 'command' must be an absolute path (no PATH "
		      "search)",
		      "t.yaml:14:38: invalid environment variable name '1X' (letters, digits and '_', "
		      "not starting with a digit)",
		      "t.yaml:14:49: expected a string for environment variable 'OK', found a sequence",
		      "t.yaml:14:62: duplicate environment variable 'OK2' (first defined at 14:54)",
		      "t.yaml:15:23: invalid value 'tty' for 'stdio': expected socket or pipe",
		      "t.yaml:15:34: invalid user name 'a:b' (at most 32 characters, no spaces, ':' "
		      "or '/')",
		      "t.yaml:15:50: invalid duration '1y' for 'timeout' (expected a number and a "
		      "unit: 250ms, 2s, 5m, 1h)",
		      "t.yaml:17:33: 'command' needs at least the program to run", NULL);
}
END_TEST

START_TEST(test_exec_options)
{
	expect_errors(V1 "routes:\n"
			 "  - name: e\n"
			 "    pipeline:\n"
			 "      - exec: {command: [/bin/cat], queue: -1, queue_timeout: 0, kill_grace: soon,\n"
			 "               working_dir: rel/dir, group: \"a b\",\n"
			 "               limits: {nofile: 0, as: 10k, cpu: 0, core: 1}}\n"
			 "  - name: f\n"
			 "    pipeline: [{exec: {command: [/bin/cat], limits: [1]}}]\n",
		      "t.yaml:5:44: 'queue' must be from 0 to 65536 (found -1)",
		      "t.yaml:5:63: 'queue_timeout' must be at least 1ms (found 0)",
		      "t.yaml:5:78: invalid duration 'soon' for 'kill_grace' (expected a number and "
		      "a unit: 250ms, 2s, 5m, 1h)",
		      "t.yaml:6:29: 'working_dir' must be an absolute path (found 'rel/dir')",
		      "t.yaml:6:45: invalid group name 'a b' (at most 32 characters, no spaces, ':' "
		      "or '/')",
		      "t.yaml:7:33: 'nofile' must be from 1 to 1073741824 (found 0)",
		      "t.yaml:7:40: invalid size '10k' for 'as' (at least 1MiB, like 512MiB)",
		      "t.yaml:7:50: 'cpu' must be at least 1000ms (found 0)",
		      "t.yaml:7:53: unknown key 'core' in 'limits'",
		      "t.yaml:9:53: expected a mapping for 'limits', found a sequence", NULL);
}
END_TEST

START_TEST(test_files_options)
{
	expect_errors(V1 "routes:\n"
			 "  - name: f\n"
			 "    pipeline:\n"
			 "      - files: {root: /srv, autoindex: maybe, cache_control: \"a\\nb\",\n"
			 "               dotfiles: show, max_header_size: 100, max_headers: 0,\n"
			 "               header_timeout: 0, send_timeout: 1y, file_cache: -1,\n"
			 "               file_cache_valid: soon, splice: always, max_header_size: 2MiB,\n"
			 "               notsent_lowat: 1GiB}\n",
		      "t.yaml:5:40: expected true or false for 'autoindex', found a string (\"maybe\")",
		      "t.yaml:5:62: 'cache_control' must be printable ASCII on one line",
		      "t.yaml:6:26: invalid value 'show' for 'dotfiles': expected ignore, allow or deny",
		      "t.yaml:6:49: invalid size '100' for 'max_header_size' (1KiB to 1024KiB, like "
		      "8KiB)",
		      "t.yaml:6:67: 'max_headers' must be from 1 to 10000 (found 0)",
		      "t.yaml:7:32: 'header_timeout' must be at least 1ms (found 0)",
		      "t.yaml:7:49: invalid duration '1y' for 'send_timeout' (expected a number and a "
		      "unit: 250ms, 2s, 5m, 1h)",
		      "t.yaml:7:65: 'file_cache' must be from 0 to 1048576 (found -1)",
		      "t.yaml:8:34: invalid duration 'soon' for 'file_cache_valid' (expected a number "
		      "and a unit: 250ms, 2s, 5m, 1h)",
		      "t.yaml:8:48: invalid value 'always' for 'splice': expected auto, on or off",
		      "t.yaml:8:56: duplicate key 'max_header_size' in 'files' (first at 6:32)",
		      "t.yaml:9:31: invalid size '1GiB' for 'notsent_lowat' (0KiB to 65536KiB, like "
		      "8KiB)", NULL);
}
END_TEST

START_TEST(test_tls_options)
{
	expect_errors(V1 "upstreams: [{name: u, servers: [\"127.0.0.1:1\"],\n"
			 "              tls: {sni: \"a b\", verify: maybe, ca: rel.pem}}]\n"
			 "listeners:\n"
			 "  - name: l\n"
			 "    bind: \"127.0.0.1:443\"\n"
			 "    tls: {cert: c.pem, min_version: 1.1, alpn: h2}\n"
			 "    route: r\n"
			 "routes: [{name: r, pipeline: [echo]}]\n",
		      "t.yaml:3:26: 'sni' must be a host name",
		      "t.yaml:3:41: expected true or false for 'verify', found a string (\"maybe\")",
		      "t.yaml:3:52: 'ca' must be an absolute path (found 'rel.pem')",
		      "t.yaml:7:10: missing required key 'key' in 'tls'",
		      "t.yaml:7:17: 'cert' must be an absolute path (found 'c.pem')",
		      "t.yaml:7:37: expected \"1.2\" or \"1.3\" for 'min_version', found a number (1.1)",
		      "t.yaml:7:48: expected a sequence for 'alpn', found a string (\"h2\")", NULL);
}
END_TEST

START_TEST(test_many_errors_sorted_and_capped)
{
	/* 60 listeners that each name an unknown route: references are resolved after the
	 * routes, but the errors still come out in file order, the first 50 kept */
	char *yaml = malloc(16384);
	size_t o = (size_t)sprintf(yaml, V1 "listeners:\n");
	for (int i = 0; i < 60; i++)
		o += (size_t)sprintf(yaml + o, "  - {name: l%d, bind: \"127.0.0.1:%d\", route: x%d}\n",
				     i, 1000 + i, i);
	sprintf(yaml + o, "routes: [{name: r, pipeline: [echo]}, {name: r, pipeline: [echo]}]\n");
	struct sp_conf_errors errs = load_bad(yaml, strlen(yaml));
	ck_assert_uint_eq(errs.count, SP_CONF_MAX_ERRORS);
	ck_assert_uint_eq(errs.dropped, 11); /* 60 + the duplicate route - 50 */
	for (unsigned i = 0; i < errs.count; i++) {
		char want[80];
		snprintf(want, sizeof(want), "t.yaml:%u:", i + 3);
		ck_assert_msg(!strncmp(errs.msgs[i], want, strlen(want)), "%s", errs.msgs[i]);
	}
	sp_conf_errors_free(&errs);
	free(yaml);
}
END_TEST

START_TEST(test_suggestions)
{
	/* transposed letters count as one edit; far-off words get no hint */
	expect_errors(V1 "log: {levle: info, taregt: auto, accesslog: true, colour: red}\n",
		      "t.yaml:2:7: unknown key 'levle' in 'log' (did you mean 'level'?)",
		      "t.yaml:2:20: unknown key 'taregt' in 'log' (did you mean 'target'?)",
		      "t.yaml:2:34: unknown key 'accesslog' in 'log' (did you mean 'access_log'?)",
		      "t.yaml:2:51: unknown key 'colour' in 'log'", NULL);
}
END_TEST

/* ---- the YAML layer and hostile input -------------------------------------------- */

START_TEST(test_yaml_errors)
{
	expect_errors(V1 "engine: [\n",
		      "t.yaml:3:1: YAML syntax error: did not find expected node content (while "
		      "parsing a flow node started at 3:1)",
		      NULL);
	expect_errors(V1 "engine:\n  shards: 1\n bad: 2\n",
		      "t.yaml:4:2: YAML syntax error: did not find expected key (while parsing a "
		      "block mapping started at 1:1)",
		      NULL);
	expect_errors(V1 "---\nversion: 1\n",
		      "t.yaml:2:1: only one YAML document is allowed; a second one starts here", NULL);
	expect_errors("", "t.yaml:1:1: the configuration is empty (it starts with 'version: 1')",
		      NULL);
	expect_errors("# only a comment\n",
		      "t.yaml:1:1: the configuration is empty (it starts with 'version: 1')", NULL);
	expect_errors(V1 "log: !!map {level: info}\n",
		      "t.yaml:2:6: YAML tags are not supported ('tag:yaml.org,2002:map')", NULL);
	expect_errors(V1 "log: {level: \"in\\0fo\"}\n", "t.yaml:2:14: NUL character in a string",
		      NULL);
	expect_errors(V1 "log: {? [a]: b}\n",
		      "t.yaml:2:9: keys must be strings, found a sequence in 'log'", NULL);
}
END_TEST

START_TEST(test_anchors_refused)
{
	expect_errors(V1 "log: &l {level: info}\n",
		      "t.yaml:2:6: YAML anchors and aliases are not supported", NULL);
	expect_errors(V1 "a: *x\n", "t.yaml:2:4: YAML anchors and aliases are not supported",
		      NULL);
	/* a "billion laughs": refused at the first anchor, in no time */
	char *bomb = malloc(65536);
	size_t o = (size_t)sprintf(bomb, "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
	for (int i = 1; i < 20; i++)
		o += (size_t)sprintf(bomb + o, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n",
				     'a' + i, 'a' + i, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
				     'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
				     'a' + i - 1, 'a' + i - 1);
	double t0 = now_s();
	struct sp_conf_errors errs = load_bad(bomb, o);
	ck_assert_double_lt(now_s() - t0, 1.0);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.msgs[0], "t.yaml:1:4: YAML anchors and aliases are not supported");
	sp_conf_errors_free(&errs);
	free(bomb);
}
END_TEST

START_TEST(test_bounds)
{
	/* nesting: 64 levels are fine (the schema then says what it thinks), 65 are not */
	size_t n = 1000000;
	char *buf = malloc(n + 2 * 1024 * 1024);
	memset(buf, '[', n);
	double t0 = now_s();
	struct sp_conf_errors errs = load_bad(buf, n);
	ck_assert_str_eq(errs.msgs[0], "t.yaml:1:65: nesting deeper than 64 levels");
	sp_conf_errors_free(&errs);
	char deep[512];
	size_t o = 0;
	o += (size_t)sprintf(deep, V1 "x: ");
	for (int i = 0; i < 63; i++)
		deep[o++] = '[';
	for (int i = 0; i < 63; i++)
		deep[o++] = ']';
	deep[o++] = '\n';
	deep[o] = '\0';
	expect_errors(deep, "t.yaml:2:1: unknown key 'x' in the top level", NULL);

	/* a scalar over 64 KiB */
	o = (size_t)sprintf(buf, V1 "log: {level: \"");
	memset(buf + o, 'x', 70000);
	o += 70000;
	o += (size_t)sprintf(buf + o, "\"}\n");
	errs = load_bad(buf, o);
	ck_assert_str_eq(errs.msgs[0], "t.yaml:2:14: value too long (70000 bytes, at most 65536)");
	sp_conf_errors_free(&errs);

	/* over 1 MiB, whatever it holds */
	memset(buf, '#', 2 * 1024 * 1024);
	errs = load_bad(buf, 1024 * 1024 + 1);
	ck_assert_str_eq(errs.msgs[0], "t.yaml:1:1: file too large (at most 1048576 bytes)");
	sp_conf_errors_free(&errs);
	ck_assert_double_lt(now_s() - t0, 5.0);
	free(buf);
}
END_TEST

START_TEST(test_binary_and_encoding)
{
	static const char nul[] = "version: 1\nlog: {le\0vel: info}\n";
	struct sp_conf_errors errs = load_bad(nul, sizeof(nul) - 1);
	ck_assert_str_eq(errs.msgs[0],
			 "t.yaml:2:9: NUL byte: this is binary data, not a YAML configuration");
	sp_conf_errors_free(&errs);

	expect_errors(V1 "log: {level: \"caf\xc3\xa9\", target: \xff}\n",
		      "t.yaml:2:30: invalid UTF-8 (byte 0xff): the configuration must be UTF-8 text",
		      NULL);
	expect_errors(V1 "\xc0\xaf: 1\n",
		      "t.yaml:2:1: invalid UTF-8 (byte 0xc0): the configuration must be UTF-8 text",
		      NULL);
	expect_errors(V1 "\xed\xa0\x80: 1\n", /* a UTF-16 surrogate */
		      "t.yaml:2:1: invalid UTF-8 (byte 0xed): the configuration must be UTF-8 text",
		      NULL);
	expect_errors("\xff\xfev\0", "t.yaml:1:1: invalid UTF-8 (byte 0xff): the configuration "
				      "must be UTF-8 text",
		      NULL);
	expect_errors(V1 "a\x1b[31m: 1\n", "t.yaml:2:2: control character 0x1b is not allowed",
		      NULL);
	/* columns count characters, not bytes */
	expect_errors(V1 "\xc3\xa9t\xc3\xa9: 1\n", "t.yaml:2:1: unknown key '\xc3\xa9t\xc3\xa9' in the "
						      "top level",
		      NULL);
	expect_errors(V1 "log: {\xc3\xa9: 1, x: 2}\n",
		      "t.yaml:2:7: unknown key '\xc3\xa9' in 'log'", "t.yaml:2:13: unknown key 'x' in 'log'",
		      NULL);

	/* random bytes: refused, never a crash */
	unsigned seed = 12345;
	char junk[4096];
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof(junk); i++) {
			seed = seed * 1103515245 + 12345;
			junk[i] = (char)(seed >> 16);
		}
		struct sp_config *c = NULL;
		ck_assert_int_lt(sp_config_load_buffer("j", junk, sizeof(junk), &c, &errs), 0);
		sp_conf_errors_free(&errs);
	}
}
END_TEST

START_TEST(test_buffer_not_terminated)
{
	/* the length counts, not a terminator: trailing bytes are not read */
	static const char text[] = "version: 1\n\xff\xff garbage";
	struct sp_config *c = NULL;
	struct sp_conf_errors errs;
	ck_assert_int_eq(sp_config_load_buffer("t.yaml", text, 11, &c, &errs), 0);
	ck_assert_uint_eq(errs.count, 0);
	sp_config_unref(c);
	ck_assert_int_eq(sp_config_load_buffer("t.yaml", text, 11, &c, NULL), 0);
	sp_config_unref(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config_errors");
	TCase *tc = tcase_create("schema");
	tcase_add_test(tc, test_unknown_keys);
	tcase_add_test(tc, test_duplicate_keys_and_names);
	tcase_add_test(tc, test_type_errors);
	tcase_add_test(tc, test_ranges_and_values);
	tcase_add_test(tc, test_addresses_and_cidrs);
	tcase_add_test(tc, test_required_keys);
	tcase_add_test(tc, test_references);
	tcase_add_test(tc, test_binds_overlap);
	tcase_add_test(tc, test_pipelines);
	tcase_add_test(tc, test_protocol_fit);
	tcase_add_test(tc, test_stage_options);
	tcase_add_test(tc, test_exec_options);
	tcase_add_test(tc, test_files_options);
	tcase_add_test(tc, test_tls_options);
	tcase_add_test(tc, test_many_errors_sorted_and_capped);
	tcase_add_test(tc, test_suggestions);
	suite_add_tcase(s, tc);
	tc = tcase_create("yaml");
	tcase_add_test(tc, test_yaml_errors);
	tcase_add_test(tc, test_anchors_refused);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_binary_and_encoding);
	tcase_add_test(tc, test_buffer_not_terminated);
	suite_add_tcase(s, tc);
	return run_config_suite(s);
}
